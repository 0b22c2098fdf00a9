"""Which JSON `paths` the service reads when started with --paths-under: real files, links and `..`."""

from __future__ import annotations

import os

from processing.serve import path_allowed


def test_paths_under_a_root_only_where_the_file_really_is(tmp_path):
    inbox, secret = tmp_path / "inbox", tmp_path / "secret.pdf"
    (inbox / "sub").mkdir(parents=True)
    secret.write_bytes(b"%PDF-")
    (inbox / "sub" / "a.pdf").write_bytes(b"%PDF-")
    os.symlink(secret, inbox / "link.pdf")
    roots = [str(inbox)]
    assert path_allowed(str(inbox / "sub" / "a.pdf"), roots)
    assert path_allowed(str(inbox / "not-yet-there.pdf"), roots)  # it answers unreadable, as any missing file
    assert not path_allowed(str(secret), roots)
    assert not path_allowed(str(inbox / ".." / "secret.pdf"), roots)
    assert not path_allowed(str(inbox / "link.pdf"), roots)  # a link out of the root counts where it points
    assert not path_allowed(str(tmp_path / "inbox-other" / "a.pdf"), roots)  # a sibling sharing the prefix
    assert not path_allowed("s3://bucket/inbox/a.pdf", roots)  # a local root allows no URI
    assert path_allowed(str(secret), [])  # no --paths-under: any file the server can read


def test_uri_roots_match_by_prefix_without_dot_segments():
    roots = ["s3://bucket/inbox", "/data"]
    assert path_allowed("s3://bucket/inbox/2026/a.pdf", roots)
    assert not path_allowed("s3://bucket/inbox-old/a.pdf", roots)
    assert not path_allowed("s3://bucket/inbox/../private/a.pdf", roots)
    assert not path_allowed("s3://other/inbox/a.pdf", roots)
    assert not path_allowed("/etc/passwd", roots)


def test_a_mistyped_paths_under_folder_is_refused_before_the_service_starts(tmp_path, capsys):
    from processing.serve import main

    assert main(["--paths-under", str(tmp_path / "no-such-folder"), "--workspace", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --paths-under {tmp_path / 'no-such-folder'}: not a folder (give a folder, or an s3://bucket/prefix)"
    )
