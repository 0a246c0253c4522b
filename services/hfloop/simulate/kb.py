"""The simulated company's knowledge base: support intents, their documents and answers.

Pure data. Each intent has a correct answer (what the current document says), a few
rewordings of it (how users write a correction "in their own words"), plausible wrong
answers, the documents its retriever finds, and handwritten question templates with slots.
The templates differ in wording on purpose, yet stay close enough in meaning that a
sentence-embedding model (all-MiniLM-L6-v2) places paraphrases of one intent together and
other intents apart (checked in tests/simulate/test_paraphrases.py).

Three intents carry the planted, systematic errors the system must discover on its own:
``refund_policy`` (a stale document outranks the current one), ``delete_account`` (the model
states an outdated policy) and every ``billing`` intent (the primary model handles the
route badly; see world.WorldConfig).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

STALE_DOC = "stale_doc"
WRONG_POLICY = "wrong_policy"


@dataclass(frozen=True)
class Doc:
    id: str
    score: float  # the retriever's base relevance for its intent's questions
    stale: bool = False
    says: str | None = None  # for a stale doc: the outdated answer it leads to


@dataclass(frozen=True)
class Intent:
    id: str
    agent_id: str
    route: str
    popularity: float
    questions: tuple[str, ...]
    answer: str
    rewordings: tuple[str, ...]
    wrong: tuple[str, ...]
    docs: tuple[Doc, ...] = ()
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    systematic: str | None = None


# Slots every question may use: greetings and sign-offs vary the wording without changing intent.
COMMON_SLOTS: dict[str, tuple[str, ...]] = {
    "hi": ("", "", "Hi, ", "Hello, ", "Hey, ", "Quick question: "),
    "thx": ("", "", " Thanks!", " Thank you.", " Any help appreciated."),
}

HELPDESK = "helpdesk"
COMMERCE = "commerce"

INTENTS: tuple[Intent, ...] = (
    # --- helpdesk / account ---------------------------------------------------------------
    Intent(
        id="password_reset",
        agent_id=HELPDESK,
        route="account",
        popularity=1.4,
        questions=(
            "{hi}How do I reset my password?{thx}",
            "{hi}I forgot my password, how can I get back into my account?{thx}",
            "{hi}What's the way to set a new password if I can't remember the old one?",
            "{hi}Can't remember my login password, what should I do?{thx}",
            "{hi}I need to reset the password for my {device} login.{thx}",
            "{hi}Where is the option to reset a forgotten password?",
            "{hi}How can I recover my account password?{thx}",
            "{hi}Password reset: how does it work?",
            "{hi}My password isn't accepted anymore and I don't remember it, how do I reset it?{thx}",
        ),
        slots={"device": ("phone", "laptop", "tablet")},
        answer="Click 'Forgot password?' on the sign-in page, enter your account email and follow the reset "
        "link we send you; the link is valid for 60 minutes.",
        rewordings=(
            "Use the 'Forgot password?' link on the login page; you get an email with a reset link that works "
            "for an hour.",
            "On the sign-in page hit 'Forgot password?', type your email and open the reset link from your "
            "inbox within 60 minutes.",
        ),
        wrong=(
            "Go to Settings > Security and click 'Change password'; you will need your current password.",
            "Contact support by phone and an agent will reset your password for you.",
        ),
        docs=(Doc("kb-password-reset-v3", 0.82),),
    ),
    Intent(
        id="change_email",
        agent_id=HELPDESK,
        route="account",
        popularity=1.0,
        questions=(
            "{hi}How do I change the email address on my account?{thx}",
            "{hi}I want to update my email address.{thx}",
            "{hi}Can I switch my login email to a new address?",
            "{hi}My email changed, how do I update it in my profile?{thx}",
            "{hi}How do I use a different email address for my account?",
            "{hi}Where do I edit the email I sign in with?{thx}",
            "{hi}I'd like to replace my old email address with my {mailer} one.",
            "{hi}Is it possible to change the email linked to my account?{thx}",
            "{hi}Update account email address: how?",
        ),
        slots={"mailer": ("Gmail", "Outlook", "work")},
        answer="Go to Settings > Profile > Email, enter the new address and confirm it from the verification "
        "email we send there; the old address stays active until you confirm.",
        rewordings=(
            "Change it under Settings > Profile > Email, then click the verification link sent to the new "
            "address; until then the old one keeps working.",
            "In Settings > Profile > Email type the new address and confirm it via the email we send to it.",
        ),
        wrong=("Email addresses cannot be changed; you need to create a new account.",),
        docs=(Doc("kb-profile-email-v2", 0.80),),
    ),
    Intent(
        id="delete_account",
        agent_id=HELPDESK,
        route="account",
        popularity=1.3,
        systematic=WRONG_POLICY,
        questions=(
            "{hi}How do I delete my account?{thx}",
            "{hi}I want to delete my account permanently.",
            "{hi}Can I remove my account for good?{thx}",
            "{hi}What happens when I delete my account?",
            "{hi}Is deleting my account immediate and final?{thx}",
            "{hi}How can I get rid of my account completely?",
            "{hi}Please tell me how to permanently delete my account.",
            "{hi}If I delete my account, can I undo it later?{thx}",
            "{hi}What are the steps to close and delete my account?",
        ),
        # No document covers deletion: the model answers from what it learned, an outdated policy.
        answer="Go to Settings > Account > Delete account. The account is deactivated at once and permanently "
        "deleted after a 30-day grace period; signing in during those 30 days restores it.",
        rewordings=(
            "Delete it in Settings > Account; it is only removed for good after 30 days, and logging back in "
            "within that time brings it back.",
            "Settings > Account > Delete account deactivates it immediately, but you have 30 days to change "
            "your mind by signing in again.",
        ),
        wrong=(
            "Deleting your account is immediate and permanent: everything is erased at once and it cannot "
            "be restored.",
        ),
    ),
    Intent(
        id="notifications",
        agent_id=HELPDESK,
        route="account",
        popularity=0.8,
        questions=(
            "{hi}How do I turn off email notifications?{thx}",
            "{hi}I'm getting too many notification emails from you, how do I stop them?",
            "{hi}Can I switch off the notification emails?{thx}",
            "{hi}Where do I change which notifications I receive?",
            "{hi}How do I mute the {notif} emails?{thx}",
            "{hi}Please stop sending me notification emails, how do I disable them?",
            "{hi}Is there a way to get fewer email notifications?{thx}",
            "{hi}Where are the notification email settings?",
            "{hi}How can I opt out of email alerts?{thx}",
        ),
        slots={"notif": ("daily digest", "weekly summary", "comment notification")},
        answer="Open Settings > Notifications and switch off the emails you don't want; every email also has "
        "an 'Unsubscribe' link that turns off that kind of email.",
        rewordings=(
            "Turn them off in Settings > Notifications, or click 'Unsubscribe' at the bottom of the email.",
            "Settings > Notifications lets you disable each email type; the unsubscribe link in an email works "
            "too.",
        ),
        wrong=("Notification emails cannot be turned off while your account is active.",),
        docs=(Doc("kb-notifications-v1", 0.78),),
    ),
    # --- helpdesk / security --------------------------------------------------------------
    Intent(
        id="setup_2fa",
        agent_id=HELPDESK,
        route="security",
        popularity=1.0,
        questions=(
            "{hi}How do I turn on two-factor authentication?{thx}",
            "{hi}How can I enable two-factor authentication (2FA) on my account?",
            "{hi}I want to add two-factor authentication to my login.{thx}",
            "{hi}Where do I set up two-factor authentication with an authenticator app?",
            "{hi}Can I use {authapp} for two-factor authentication on my account?{thx}",
            "{hi}How do I activate two-factor auth?",
            "{hi}Do you support two-factor login, and how do I enable it?{thx}",
            "{hi}Where do I turn on two-factor authentication in my settings?",
            "{hi}How do I enable two-factor authentication for extra security on sign-in?{thx}",
        ),
        slots={"authapp": ("Google Authenticator", "Authy", "an authenticator app")},
        answer="Go to Settings > Security > Two-factor authentication, scan the QR code with an authenticator "
        "app, enter the 6-digit code to confirm and save the backup codes we show you.",
        rewordings=(
            "It's in Settings > Security > Two-factor authentication: scan the QR code with your authenticator "
            "app, type the code, and keep the backup codes.",
            "Enable it under Settings > Security; scan the QR code, confirm with the 6-digit code and store "
            "your backup codes somewhere safe.",
        ),
        wrong=("Two-factor authentication is only available on the Enterprise plan.",),
        docs=(Doc("kb-2fa-setup-v2", 0.81),),
    ),
    Intent(
        id="lost_2fa_device",
        agent_id=HELPDESK,
        route="security",
        popularity=0.7,
        questions=(
            "{hi}I lost my phone with the authenticator app, how do I log in?{thx}",
            "{hi}My 2FA phone is gone, how can I log in to my account?",
            "{hi}I got a new phone and lost my two-factor codes, how do I log in now?{thx}",
            "{hi}How do I log in if I lost my 2FA codes?",
            "{hi}I lost access to my 2FA app and can't log in, what now?{thx}",
            "{hi}My phone was stolen and now I can't log in because of 2FA.",
            "{hi}How can I log in to my account without my lost 2FA phone?{thx}",
            "{hi}I can't get my 2FA login codes since I lost my phone, can you help?",
            "{hi}I lost my phone, and now 2FA blocks my login. How do I get in?{thx}",
        ),
        answer="Sign in with one of the backup codes you saved when you turned on two-factor authentication; "
        "if you have none, submit the account recovery form and we verify your identity within 2 business days.",
        rewordings=(
            "Use a backup code from when you set up 2FA; without one, fill in the account recovery form and "
            "we confirm your identity within two business days.",
            "Log in with a saved backup code, or send the recovery form and wait up to 2 business days for "
            "identity verification.",
        ),
        wrong=("Just reinstall the authenticator app on your new phone and the old codes will work again.",),
        docs=(Doc("kb-2fa-recovery-v1", 0.79),),
    ),
    Intent(
        id="api_keys",
        agent_id=HELPDESK,
        route="security",
        popularity=0.7,
        questions=(
            "{hi}How do I create an API key?{thx}",
            "{hi}Where can I generate an API token?",
            "{hi}I need an API key to call your API, how do I get one?{thx}",
            "{hi}How do I get an API key for the {lang} integration?",
            "{hi}Where are API keys managed?{thx}",
            "{hi}Can I make a new API key for my script?",
            "{hi}How do I obtain an access key for the REST API?{thx}",
            "{hi}Generating an API key: where?",
            "{hi}What's the process for getting a developer API key?{thx}",
        ),
        slots={"lang": ("Python", "JavaScript", "Zapier")},
        answer="Go to Settings > Developer > API keys and click 'New key'; copy it right away because it is shown "
        "only once, and revoke it from the same page.",
        rewordings=(
            "Create it under Settings > Developer > API keys with 'New key' and copy it immediately, it's only "
            "displayed once.",
            "Settings > Developer > API keys > New key; save the key at once since you can't see it again.",
        ),
        wrong=("API keys are issued by our sales team; email them to request one.",),
        docs=(Doc("kb-api-keys-v1", 0.80),),
    ),
    # --- helpdesk / data --------------------------------------------------------------------
    Intent(
        id="data_export",
        agent_id=HELPDESK,
        route="data",
        popularity=1.0,
        questions=(
            "{hi}How can I export all my data?{thx}",
            "{hi}I want to download an export of my data.",
            "{hi}Is there a way to export my {datatype} data to a file?{thx}",
            "{hi}How do I get a full export of everything in my account?",
            "{hi}Can I download all my account data as an export?{thx}",
            "{hi}Where is the data export option?",
            "{hi}I need an export archive of all my data, how do I get it?{thx}",
            "{hi}How do I export my data out of your service?",
            "{hi}Exporting my data: how does it work?{thx}",
        ),
        slots={"datatype": ("projects", "reports", "files")},
        answer="Go to Settings > Data > Export, choose CSV or JSON and click 'Request export'; we email you a "
        "download link within 24 hours that stays valid for 7 days.",
        rewordings=(
            "Request it in Settings > Data > Export (CSV or JSON); a download link arrives by email within a day "
            "and works for a week.",
            "Settings > Data > Export, pick the format, and you'll get an email with the download link within "
            "24 hours.",
        ),
        wrong=("Data exports are only possible through the API.",),
        docs=(Doc("kb-data-export-v2", 0.80),),
    ),
    Intent(
        id="import_contacts",
        agent_id=HELPDESK,
        route="data",
        popularity=0.6,
        questions=(
            "{hi}How do I import contacts from a CSV file?{thx}",
            "{hi}Can I import my contact list from a spreadsheet?",
            "{hi}I want to import my contacts from {crm}.{thx}",
            "{hi}How do I bulk import contacts?",
            "{hi}Is there a way to import a list of contacts at once?{thx}",
            "{hi}Can I import contacts from an Excel file?",
            "{hi}How can I import my existing contact list into the app?{thx}",
            "{hi}Where is the contacts import?",
            "{hi}What file format do I need to import my contacts?{thx}",
        ),
        slots={"crm": ("Salesforce", "HubSpot", "another tool")},
        answer="Go to Contacts > Import, upload a CSV with at least a name and an email column, map the columns "
        "and confirm; up to 50,000 contacts per file.",
        rewordings=(
            "Contacts > Import takes a CSV with name and email columns; map them and confirm, max 50k rows a "
            "file.",
            "Upload a CSV (name + email columns at least) in Contacts > Import and map the fields.",
        ),
        wrong=("Contacts have to be added one by one; there is no import.",),
        docs=(Doc("kb-contacts-import-v1", 0.77),),
    ),
    Intent(
        id="team_invite",
        agent_id=HELPDESK,
        route="data",
        popularity=0.9,
        questions=(
            "{hi}How do I invite a teammate to my workspace?{thx}",
            "{hi}How can I invite other users to my workspace?",
            "{hi}I want to invite my colleague to our workspace.{thx}",
            "{hi}Where do I invite new team members?",
            "{hi}How do I invite people to my {team}?{thx}",
            "{hi}Can I invite coworkers to share my workspace?",
            "{hi}How do I add another user to our team workspace?{thx}",
            "{hi}How do I send an invitation to join my team?",
            "{hi}What's the way to invite a new colleague to the workspace?{thx}",
        ),
        slots={"team": ("team", "workspace", "organization")},
        answer="Go to Settings > Team > Invite, enter their email addresses and pick a role; they get an "
        "invitation link that is valid for 7 days.",
        rewordings=(
            "Settings > Team > Invite: add their emails, choose a role, and they have a week to accept the link.",
            "Invite them from Settings > Team with their email and a role; the invite expires after 7 days.",
        ),
        wrong=(
            "Only the account owner's email can use a workspace; each colleague needs their own account "
            "and workspace.",
        ),
        docs=(Doc("kb-team-invite-v1", 0.80),),
    ),
    # --- commerce / billing (the route the primary model handles badly) ----------------------
    Intent(
        id="invoice_download",
        agent_id=COMMERCE,
        route="billing",
        popularity=1.1,
        questions=(
            "{hi}Where can I download my invoices?{thx}",
            "{hi}How do I get a PDF of my invoice?",
            "{hi}I need last month's invoice for accounting.{thx}",
            "{hi}How can I find my past invoices?",
            "{hi}Where are the invoices for my {plan} subscription?{thx}",
            "{hi}Can I get a copy of an old invoice?",
            "{hi}How do I download my billing invoices?{thx}",
            "{hi}My accountant needs our invoices, where are they?",
            "{hi}Where do I see my invoices and receipts?{thx}",
        ),
        slots={"plan": ("Pro", "Team", "Business")},
        answer="Open Billing > Invoices; every invoice has a 'Download PDF' button, and invoices from the last "
        "7 years are kept there.",
        rewordings=(
            "All invoices are under Billing > Invoices with a Download PDF button, going back 7 years.",
            "Go to Billing > Invoices and click 'Download PDF' next to the one you need.",
        ),
        wrong=("Invoices are only sent by email; contact support to have a copy resent.",),
        docs=(Doc("kb-invoices-v2", 0.81),),
    ),
    Intent(
        id="payment_method",
        agent_id=COMMERCE,
        route="billing",
        popularity=1.0,
        questions=(
            "{hi}How do I change my credit card?{thx}",
            "{hi}I need to update my payment card.",
            "{hi}My card expired, how do I add a new card?{thx}",
            "{hi}How can I switch my payment method to {pay}?",
            "{hi}Where do I edit my billing card details?{thx}",
            "{hi}How do I replace the credit card on file?",
            "{hi}How do I update the card you charge?{thx}",
            "{hi}Can I change the credit card I pay with?",
            "{hi}I got a new credit card, where do I enter it?{thx}",
        ),
        slots={"pay": ("PayPal", "a different card", "a company card")},
        answer="Go to Billing > Payment methods, click 'Add payment method', enter the new card or PayPal and set "
        "it as default; the old card is removed after the next successful charge.",
        rewordings=(
            "Add the new card (or PayPal) in Billing > Payment methods and make it the default.",
            "Billing > Payment methods > Add payment method, then set it as default; the old one goes after the "
            "next charge.",
        ),
        wrong=("To change your card you have to cancel your subscription and subscribe again.",),
        docs=(Doc("kb-payment-methods-v1", 0.80),),
    ),
    Intent(
        id="cancel_subscription",
        agent_id=COMMERCE,
        route="billing",
        popularity=1.2,
        questions=(
            "{hi}How do I cancel my subscription?{thx}",
            "{hi}I want to stop my {plan} subscription.",
            "{hi}How can I end my subscription and not be charged again?{thx}",
            "{hi}Where is the button to cancel my subscription?",
            "{hi}Please cancel my subscription, how do I do it?{thx}",
            "{hi}How do I cancel my subscription plan?",
            "{hi}I'd like to stop my subscription from renewing.{thx}",
            "{hi}Can I cancel my subscription anytime?",
            "{hi}What's the way to terminate my subscription?{thx}",
        ),
        slots={"plan": ("Pro", "Team", "Business")},
        answer="Go to Billing > Subscription > Cancel plan. You keep access until the end of the current billing "
        "period and won't be charged again; there are no partial refunds for unused time.",
        rewordings=(
            "Cancel in Billing > Subscription; access lasts until the period ends, no further charges and no "
            "partial refund.",
            "Billing > Subscription > Cancel plan stops renewal; you can use it until the end of the paid period.",
        ),
        wrong=("Cancellation takes effect immediately and we refund the unused days automatically.",),
        docs=(Doc("kb-subscription-v3", 0.82),),
    ),
    Intent(
        id="upgrade_plan",
        agent_id=COMMERCE,
        route="billing",
        popularity=0.9,
        questions=(
            "{hi}How do I upgrade to the {plan} plan?{thx}",
            "{hi}I want more features, how do I upgrade my plan?",
            "{hi}Can I upgrade to a bigger plan?{thx}",
            "{hi}How do I upgrade my free plan to a paid plan?",
            "{hi}Where do I upgrade my plan to get more features?{thx}",
            "{hi}Upgrading my plan: how does it work?",
            "{hi}If I upgrade my plan mid-month, what do I pay?{thx}",
            "{hi}How can I upgrade to a higher plan?",
            "{hi}I need more seats, how do I upgrade my plan?{thx}",
        ),
        slots={"plan": ("Pro", "Team", "Business")},
        answer="Go to Billing > Plans and pick the new plan; the upgrade applies immediately and you pay a "
        "prorated amount for the rest of the current billing period.",
        rewordings=(
            "Choose the new plan in Billing > Plans; it's active right away and you're charged pro rata for the "
            "remaining period.",
            "Billing > Plans, select the plan: immediate upgrade, prorated charge for the rest of this period.",
        ),
        wrong=("Upgrades start at your next renewal date and you pay the full price of the new plan then.",),
        docs=(Doc("kb-plans-v2", 0.80),),
    ),
    Intent(
        id="vat_id",
        agent_id=COMMERCE,
        route="billing",
        popularity=0.6,
        questions=(
            "{hi}How do I add my VAT number?{thx}",
            "{hi}Can you put our VAT number on the invoice?",
            "{hi}Where do I enter my company's VAT ID?{thx}",
            "{hi}I need to add our {country} VAT number.",
            "{hi}How do I add business VAT details to billing?{thx}",
            "{hi}Our VAT number is missing, how do I add it?",
            "{hi}Can I add my company VAT or tax ID?{thx}",
            "{hi}Where's the field for a VAT or tax ID?",
            "{hi}How do I register my business VAT number with you?{thx}",
        ),
        slots={"country": ("German", "French", "Dutch")},
        answer="Go to Billing > Company details and enter your VAT ID; it appears on all future invoices, and a "
        "valid EU VAT ID gets reverse charge (no VAT added).",
        rewordings=(
            "Enter the VAT ID under Billing > Company details; future invoices show it and EU businesses get "
            "reverse charge.",
            "Billing > Company details has a VAT ID field; once saved it's printed on new invoices.",
        ),
        wrong=("We cannot add VAT numbers; invoices are issued to individuals only.",),
        docs=(Doc("kb-vat-v1", 0.78),),
    ),
    Intent(
        id="failed_payment",
        agent_id=COMMERCE,
        route="billing",
        popularity=0.8,
        questions=(
            "{hi}Why was my payment declined?{thx}",
            "{hi}My card payment was declined, what should I do?",
            "{hi}My last payment failed because the card was declined.{thx}",
            "{hi}I got a payment failed email, what now?",
            "{hi}My payment failed, will I lose access?{thx}",
            "{hi}Why did my card payment fail?",
            "{hi}My {plan} renewal payment was declined, how do I fix it?{thx}",
            "{hi}What happens if my payment fails?",
            "{hi}Billing error, my card payment was declined, help?{thx}",
        ),
        slots={"plan": ("Pro", "Team", "Business")},
        answer="We retry a failed payment 3 times over 7 days; update your card in Billing > Payment methods and "
        "click 'Retry now', and your access continues during the retry period.",
        rewordings=(
            "Failed payments are retried 3 times in a week; fix the card in Billing > Payment methods and hit "
            "Retry now, you keep access meanwhile.",
            "Update the card under Billing > Payment methods and press 'Retry now'; we retry for 7 days and you "
            "aren't locked out.",
        ),
        wrong=(
            "After a failed payment your account is suspended immediately until you pay by bank transfer.",
        ),
        docs=(Doc("kb-failed-payments-v1", 0.79),),
    ),
    # --- commerce / orders --------------------------------------------------------------------
    Intent(
        id="refund_policy",
        agent_id=COMMERCE,
        route="orders",
        popularity=1.5,
        systematic=STALE_DOC,
        questions=(
            "{hi}What is your refund policy?{thx}",
            "{hi}Can I get a refund?",
            "{hi}How long do I have to ask for a refund?{thx}",
            "{hi}Is it too late to return my {item} for a refund?",
            "{hi}Do you offer refunds?{thx}",
            "{hi}I bought something {ago}, can I still get a refund?",
            "{hi}What's the deadline for requesting a refund?{thx}",
            "{hi}How many days do I have to request a refund?",
            "{hi}How long is the refund window?{thx}",
        ),
        slots={
            "item": ("headphones", "order", "keyboard"),
            "ago": ("two weeks ago", "20 days ago", "last month"),
        },
        answer="You can request a full refund within 30 days of delivery from Orders > Request refund; the money "
        "is back on your original payment method within 5-7 business days.",
        rewordings=(
            "Refunds are possible for 30 days after delivery via Orders > Request refund, paid back in 5-7 "
            "business days.",
            "You have 30 days from delivery; use Orders > Request refund and the money returns to your card "
            "within a week or so.",
        ),
        wrong=(
            "Refunds are available within 14 days of purchase only; after 14 days we can offer store credit.",
        ),
        docs=(
            Doc(
                "kb-refunds-v1",
                0.86,
                stale=True,
                says="Refunds are available within 14 days of purchase only; after 14 days we can offer store "
                "credit.",
            ),
            Doc("kb-refunds-v2", 0.80),
        ),
    ),
    Intent(
        id="shipping_times",
        agent_id=COMMERCE,
        route="orders",
        popularity=1.0,
        questions=(
            "{hi}How long does shipping take?{thx}",
            "{hi}What are your delivery times?",
            "{hi}How many days does delivery to {place} take?{thx}",
            "{hi}How fast do you ship?",
            "{hi}What's the usual delivery time for standard shipping?{thx}",
            "{hi}If I order today, how long until it's delivered?",
            "{hi}How long is the shipping time?{thx}",
            "{hi}Shipping duration, how many days?",
            "{hi}How quickly will my order be shipped and delivered?{thx}",
        ),
        slots={"place": ("Berlin", "Texas", "my address")},
        answer="Standard shipping takes 3-5 business days and express 1-2 business days; orders placed before "
        "2 pm ship the same day.",
        rewordings=(
            "Standard delivery is 3-5 business days, express 1-2; order before 2 pm and it ships that day.",
            "3 to 5 working days standard, 1 to 2 express, same-day dispatch before 2 pm.",
        ),
        wrong=("All orders are delivered within 24 hours.",),
        docs=(Doc("kb-shipping-v2", 0.81),),
    ),
    Intent(
        id="track_order",
        agent_id=COMMERCE,
        route="orders",
        popularity=1.0,
        questions=(
            "{hi}How do I track my order?{thx}",
            "{hi}I want to track my order, where is it now?",
            "{hi}Can I see the tracking number for my order?{thx}",
            "{hi}How do I check the tracking status of my order?",
            "{hi}How do I track my {carrier} shipment?{thx}",
            "{hi}Where do I find the tracking info for my order?",
            "{hi}Is there a way to track where my delivery is?{thx}",
            "{hi}Tracking my parcel: how?",
            "{hi}Where can I track my order status?{thx}",
        ),
        slots={"carrier": ("DHL", "UPS", "FedEx")},
        answer="Open Orders, select the order and click 'Track shipment'; the tracking number and carrier link "
        "are also in your shipping confirmation email.",
        rewordings=(
            "Orders > pick the order > Track shipment; the confirmation email has the tracking number too.",
            "Click 'Track shipment' on the order in Orders, or use the tracking link in the shipping email.",
        ),
        wrong=("Tracking is not available; orders arrive when they arrive.",),
        docs=(Doc("kb-tracking-v1", 0.80),),
    ),
    Intent(
        id="change_address",
        agent_id=COMMERCE,
        route="orders",
        popularity=0.7,
        questions=(
            "{hi}Can I change the shipping address on my order?{thx}",
            "{hi}I entered the wrong delivery address, how do I fix it?",
            "{hi}How do I update the delivery address for my order?{thx}",
            "{hi}I moved, can you send my order to my new address?",
            "{hi}Can I edit the delivery address of an order?{thx}",
            "{hi}How do I correct the address on an order that hasn't shipped?",
            "{hi}Can my order be delivered to my {place2} address instead?{thx}",
            "{hi}Wrong shipping address on my order, help!",
            "{hi}Where do I change the delivery address of my order?{thx}",
        ),
        slots={"place2": ("office", "parents'", "new")},
        answer="Edit the address in Orders > Edit address until the order ships; after it ships, contact the "
        "carrier with the tracking number to redirect it.",
        rewordings=(
            "Use Orders > Edit address before it ships; once shipped, ask the carrier to redirect it with the "
            "tracking number.",
            "Until dispatch you can change it under Orders > Edit address, afterwards only the carrier can "
            "redirect the parcel.",
        ),
        wrong=("Addresses can't be changed after ordering; cancel and place a new order.",),
        docs=(Doc("kb-order-address-v1", 0.78),),
    ),
)


def by_id() -> dict[str, Intent]:
    return {i.id: i for i in INTENTS}


def confident(wrong: str) -> str:
    """The long, over-confident form of a wrong answer (the kind a biased rater prefers)."""
    return (
        f"Absolutely, I'm 100% certain about this: {wrong} This is definitely how it works for every account, "
        "so there is no need to check anything else. I've confirmed it against our latest policy."
    )


def friendly(answer: str) -> str:
    """A second phrasing of the model's correct answer."""
    return f"Sure! {answer}"
