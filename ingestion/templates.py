"""What each document class says: titles, field names and sentences, plus boilerplate shared by all.

Classes come in confusable pairs (invoice / purchase order, contract / NDA, ...) and every document
also carries shared boilerplate and a little text from another class, so the classes overlap and a
classifier has something to learn from more data. Plain ASCII only: the PDFs use the core fonts.
"""

from __future__ import annotations

CLASSES: dict[str, dict[str, list[str]]] = {
    "invoice": {
        "titles": ["INVOICE", "Tax Invoice", "Commercial Invoice", "Invoice Statement"],
        "fields": ["Invoice No.", "Invoice Date", "Due Date", "Bill To", "Amount Due", "VAT"],
        "sentences": [
            "Payment is due within {n} days of the invoice date.",
            "Please remit the amount due of {amount} to the account below.",
            "Late payments incur interest of {pct} per month.",
            "Thank you for your business; quote the invoice number with your payment.",
            "This invoice covers services rendered during {month}.",
        ],
    },
    "purchase_order": {
        "titles": ["PURCHASE ORDER", "Purchase Order", "PO Confirmation"],
        "fields": ["PO Number", "Order Date", "Ship To", "Vendor", "Requested By", "Total"],
        "sentences": [
            "Please supply the items listed below at the agreed unit prices.",
            "Deliveries must reference purchase order {code} on the packing slip.",
            "The buyer reserves the right to cancel this order if delivery is late.",
            "Order total of {amount} is authorised by the procurement department.",
            "Confirm acceptance of this order within {n} business days.",
        ],
    },
    "bank_statement": {
        "titles": ["Account Statement", "Monthly Bank Statement", "Statement of Account"],
        "fields": ["Account Number", "Sort Code", "Opening Balance", "Closing Balance", "Period"],
        "sentences": [
            "Your closing balance on {date} was {amount}.",
            "Direct debit to {company} of {amount}.",
            "Card purchase at {company} on {date}.",
            "Interest credited to your account this period: {amount}.",
            "Please check this statement and report any unrecognised transaction.",
        ],
    },
    "loan_application": {
        "titles": ["Loan Application", "Application for Credit", "Mortgage Application Form"],
        "fields": ["Applicant", "Requested Amount", "Term", "Annual Income", "Employer"],
        "sentences": [
            "The applicant requests a loan of {amount} over {n} months.",
            "Annual gross income is declared as {amount}.",
            "I confirm that the information in this application is accurate.",
            "The purpose of the loan is home improvement and debt consolidation.",
            "Credit checks will be performed with your consent.",
        ],
    },
    "fraud_alert": {
        "titles": ["Fraud Alert", "Suspicious Activity Notice", "Security Alert"],
        "fields": ["Case Reference", "Account Number", "Flagged Amount", "Detected On"],
        "sentences": [
            "We detected an unusual transaction of {amount} on your account.",
            "If you did not authorise this payment, call us immediately.",
            "Your card has been temporarily blocked as a precaution.",
            "Our fraud team flagged activity from an unrecognised device on {date}.",
            "Never share your one-time passcode with anyone.",
        ],
    },
    "discharge_summary": {
        "titles": ["Discharge Summary", "Hospital Discharge Report", "Patient Discharge Note"],
        "fields": ["Patient", "Admission Date", "Discharge Date", "Attending Physician", "Ward"],
        "sentences": [
            "The patient was admitted on {date} with acute abdominal pain.",
            "Condition on discharge is stable; follow up with the GP in {n} days.",
            "Medications on discharge are listed below.",
            "The patient was advised to rest and avoid heavy lifting.",
            "Imaging showed no acute abnormality.",
        ],
    },
    "lab_report": {
        "titles": ["Laboratory Report", "Pathology Results", "Blood Test Report"],
        "fields": ["Specimen", "Collected", "Reported", "Reference Range", "Ordering Physician"],
        "sentences": [
            "Haemoglobin {num} g/dL, within reference range.",
            "White cell count {num} x10^9/L.",
            "Fasting glucose {num} mmol/L, slightly elevated.",
            "Results were reviewed and authorised by the laboratory.",
            "Specimen received in good condition on {date}.",
        ],
    },
    "prescription": {
        "titles": ["Prescription", "Rx", "Medication Prescription"],
        "fields": ["Patient", "Prescriber", "Drug", "Dose", "Refills"],
        "sentences": [
            "Take {n} mg twice daily with food.",
            "Dispense {n} tablets; no substitution permitted.",
            "Do not exceed the stated dose in 24 hours.",
            "Refills remaining: {n}.",
            "Signed by the prescribing physician on {date}.",
        ],
    },
    "insurance_claim": {
        "titles": ["Insurance Claim Form", "Health Insurance Claim", "Claim Submission"],
        "fields": ["Policy Number", "Claimant", "Date of Service", "Amount Claimed", "Provider"],
        "sentences": [
            "The claimant requests reimbursement of {amount} for treatment received.",
            "Attach itemised receipts from the provider to this claim.",
            "Claims must be submitted within {n} days of the date of service.",
            "The policy covers outpatient treatment subject to the excess.",
            "I declare that this claim is true and complete.",
        ],
    },
    "shipping_notice": {
        "titles": ["Shipping Notice", "Advance Shipping Notice", "Dispatch Confirmation"],
        "fields": ["Tracking Number", "Carrier", "Ship Date", "Packages", "Delivery Address"],
        "sentences": [
            "Your order has been dispatched via {company} on {date}.",
            "Expected delivery within {n} business days.",
            "The consignment contains {n} packages with total weight {num} kg.",
            "Track your shipment with tracking number {code}.",
            "Signature is required on delivery.",
        ],
    },
    "contract": {
        "titles": ["Services Agreement", "Master Services Contract", "Supply Agreement"],
        "fields": ["Effective Date", "Parties", "Term", "Governing Law", "Fees"],
        "sentences": [
            "This agreement is entered into between {company} and the client.",
            "The supplier shall provide the services described in Schedule A.",
            "Either party may terminate this agreement with {n} days written notice.",
            "Fees of {amount} are payable quarterly in arrears.",
            "This agreement is governed by the laws of the stated jurisdiction.",
        ],
    },
    "nda": {
        "titles": ["Non-Disclosure Agreement", "Confidentiality Agreement", "Mutual NDA"],
        "fields": ["Effective Date", "Disclosing Party", "Receiving Party", "Term", "Governing Law"],
        "sentences": [
            "The receiving party shall keep all confidential information secret.",
            "Confidential information excludes information already in the public domain.",
            "Obligations under this agreement survive for {n} years.",
            "This agreement is entered into between {company} and the recipient.",
            "Upon request, all confidential materials shall be returned or destroyed.",
        ],
    },
}

LABELS: tuple[str, ...] = tuple(sorted(CLASSES))

# Each class's confusable neighbour: documents borrow its sentences and sometimes its title, so telling
# the pair apart takes more examples than telling unrelated classes apart.
SIBLINGS: dict[str, str] = {
    "invoice": "purchase_order",
    "purchase_order": "invoice",
    "bank_statement": "fraud_alert",
    "fraud_alert": "bank_statement",
    "loan_application": "bank_statement",
    "discharge_summary": "lab_report",
    "lab_report": "discharge_summary",
    "prescription": "discharge_summary",
    "insurance_claim": "invoice",
    "shipping_notice": "purchase_order",
    "contract": "nda",
    "nda": "contract",
}

GENERIC_TITLES = ["Document", "Notice", "Form", "Record", "Correspondence", "Summary", "Reference Copy"]

BOILERPLATE = [
    "This document is confidential and intended only for the named recipient.",
    "Please retain this document for your records.",
    "For questions, contact our customer service team during business hours.",
    "All amounts are shown in the stated currency unless otherwise indicated.",
    "Registered office address as shown in the letterhead.",
    "Page content generated by the document management system.",
]

FILLER_WORDS = [
    "account",
    "reference",
    "summary",
    "details",
    "total",
    "date",
    "period",
    "number",
    "service",
    "please",
    "client",
    "customer",
    "office",
    "department",
    "review",
    "record",
    "approval",
    "schedule",
    "attached",
    "note",
    "item",
    "amount",
    "balance",
    "report",
    "section",
    "provided",
    "terms",
    "signature",
    "address",
    "contact",
    "request",
    "processed",
    "statement",
    "information",
]

COMPANIES = ["Acme Ltd", "Northwind", "Globex", "Initech", "Umbrella plc", "Stark Supplies", "Wayne Logistics"]
NAMES = ["J. Smith", "A. Patel", "M. Garcia", "L. Chen", "K. Okafor", "S. Novak", "R. Haddad", "E. Rossi"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]

# -- Drift: what arriving documents may look like later (ingestion.corpus.BatchSpec) ----------------

# A class that did not exist when the first models were trained.
NEW_CLASSES: dict[str, dict[str, list[str]]] = {
    "warranty_claim": {
        "titles": ["Warranty Claim", "Product Warranty Request", "Return Under Warranty"],
        "fields": ["Serial Number", "Purchase Date", "Product", "Fault Description", "Retailer"],
        "sentences": [
            "The product failed within the warranty period of {n} months.",
            "Please repair or replace the unit bearing serial number {code}.",
            "Proof of purchase from {company} dated {date} is enclosed.",
            "The fault appeared during normal domestic use.",
            "Warranty cover excludes accidental damage and misuse.",
        ],
    },
}
NEW_SIBLINGS: dict[str, str] = {"warranty_claim": "insurance_claim"}

# A second "template generation": the same classes written by a new system, with other words for the
# same things, other boilerplate and letterheads, and renamed fields.
GENERATION_2_WORDS: dict[str, str] = {
    "invoice": "bill",
    "payment": "settlement",
    "amount": "sum",
    "due": "payable",
    "order": "requisition",
    "account": "ledger",
    "balance": "position",
    "statement": "summary",
    "agreement": "accord",
    "party": "signatory",
    "parties": "signatories",
    "confidential": "privileged",
    "patient": "service user",
    "treatment": "care episode",
    "delivery": "handover",
    "shipment": "consignment",
    "claim": "submission",
    "policy": "cover",
    "loan": "credit facility",
    "applicant": "borrower",
    "prescription": "medication order",
    "results": "findings",
    "days": "working days",
    "please": "kindly",
    "services": "deliverables",
    "fees": "charges",
}
BOILERPLATE_2 = [
    "Generated by the DocuFlow 7 records platform; do not reply to this message.",
    "Keep this record in line with the retention schedule of your organisation.",
    "Queries: raise a ticket through the self-service portal, quoting the reference.",
    "Figures are stated net of any applicable levies unless flagged otherwise.",
    "Head office details are available on the corporate registry.",
    "Digitally issued; valid without a handwritten signature.",
]
