//! Tests for `latchkey_testkit::stripe::FakeStripe`, driven by the real async-stripe
//! client (1.0.0-rc.10) through its request builders: every response must deserialize
//! into the client's types.

use std::collections::HashMap;
use std::time::Duration;

use latchkey_testkit::stripe::{FakeStripe, Fault, PaymentMethodKind, sign};
use serde_json::{Value, json};
use stripe::{ApiErrorsCode, ApiErrorsType, Client, ClientBuilder, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionAllowedPaymentMethodTypes,
    CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionPaymentMethodOptions,
    CreateCheckoutSessionPaymentMethodOptionsAcssDebit,
    CreateCheckoutSessionPaymentMethodOptionsAcssDebitCurrency,
    CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptions,
    CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptionsPaymentSchedule,
    CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptionsTransactionType, ProductData,
    RetrieveCheckoutSession,
};
use stripe_checkout::{
    CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus,
};
use stripe_core::customer::{
    CreateCustomer, ListPaymentMethodsCustomer, ListPaymentMethodsCustomerType,
};
use stripe_payment::PaymentMethodType;
use stripe_payment::payment_method::DetachPaymentMethod;

const KEY: &str = "sk_test_fake";
const SUCCESS_URL: &str =
    "http://portal.test/billing?checkout=success&session={CHECKOUT_SESSION_ID}";
const CANCEL_URL: &str = "http://portal.test/billing?checkout=cancel";

fn client(fake: &FakeStripe) -> Client {
    ClientBuilder::new(KEY).url(fake.url()).build().unwrap()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `stripe_types::Currency` is not re-exported by async-stripe, async-stripe-checkout,
/// -core or -payment, so it cannot be named without a direct `async-stripe-types`
/// dependency. `CreateCheckoutSessionLineItemsPriceData` has a public `currency` field of
/// that type, so a struct literal lets `str::parse` infer it.
fn price_data(
    currency: &str,
    unit_amount: i64,
    product: &str,
) -> CreateCheckoutSessionLineItemsPriceData {
    CreateCheckoutSessionLineItemsPriceData {
        currency: currency.parse().unwrap(),
        product: None,
        product_data: Some(ProductData::new(product)),
        recurring: None,
        tax_behavior: None,
        unit_amount: Some(unit_amount),
        unit_amount_decimal: None,
    }
}

async fn create_customer(client: &Client, email: &str, account_id: &str) -> stripe_core::Customer {
    CreateCustomer::new()
        .email(email)
        .name("Alice Example")
        .metadata(map(&[("account_id", account_id)]))
        .send(client)
        .await
        .unwrap()
}

/// The payment-mode session BillingSync creates for an invoice.
fn payment_session(
    customer: &str,
    invoice_id: &str,
    account_id: &str,
    amount: i64,
) -> CreateCheckoutSession {
    let mut line = CreateCheckoutSessionLineItems::new();
    line.price_data = Some(price_data("cad", amount, "Invoice INV-0042"));
    line.quantity = Some(1);
    let mut intent = CreateCheckoutSessionPaymentIntentData::new();
    intent.metadata = Some(map(&[("invoice_id", invoice_id)]));
    CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .customer(customer)
        .client_reference_id(invoice_id)
        .line_items(vec![line])
        .metadata(map(&[
            ("invoice_id", invoice_id),
            ("account_id", account_id),
        ]))
        .payment_intent_data(intent)
        .success_url(SUCCESS_URL)
        .cancel_url(CANCEL_URL)
}

/// The setup-mode session BillingSync creates to add a payment method (card, and
/// Canadian pre-authorized debit when `acss` is set).
fn setup_session(customer: &str, account_id: &str, acss: bool) -> CreateCheckoutSession {
    let mut types = vec![CreateCheckoutSessionAllowedPaymentMethodTypes::Card];
    let mut session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Setup)
        .customer(customer)
        .currency(price_data("cad", 0, "-").currency)
        .metadata(map(&[("account_id", account_id)]))
        .success_url(SUCCESS_URL)
        .cancel_url(CANCEL_URL);
    if acss {
        types.push(CreateCheckoutSessionAllowedPaymentMethodTypes::AcssDebit);
        let mut mandate = CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptions::new();
        mandate.payment_schedule =
            Some(CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptionsPaymentSchedule::Sporadic);
        mandate.transaction_type =
            Some(CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptionsTransactionType::Personal);
        let mut acss_options = CreateCheckoutSessionPaymentMethodOptionsAcssDebit::new();
        acss_options.currency =
            Some(CreateCheckoutSessionPaymentMethodOptionsAcssDebitCurrency::Cad);
        acss_options.mandate_options = Some(mandate);
        let mut options = CreateCheckoutSessionPaymentMethodOptions::new();
        options.acss_debit = Some(acss_options);
        session = session.payment_method_options(options);
    }
    session.allowed_payment_method_types(types)
}

fn stripe_error(err: StripeError) -> (Box<stripe::ApiErrors>, u16) {
    match err {
        StripeError::Stripe(e, status) => (e, status),
        other => panic!("expected an error reported by Stripe, got {other:?}"),
    }
}

#[tokio::test]
async fn creates_a_customer() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    assert!(fake.url().starts_with("http://127.0.0.1:"));
    assert_eq!(fake.url(), format!("http://127.0.0.1:{}", fake.port()));
    let client = client(&fake);

    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    assert_eq!(customer.id.as_str(), "cus_test_1");
    assert_eq!(customer.email.as_deref(), Some("alice@example.com"));
    assert_eq!(customer.name.as_deref(), Some("Alice Example"));
    assert_eq!(customer.metadata.unwrap()["account_id"], "acct-7");
    assert!(!customer.livemode);

    let second = create_customer(&client, "bob@example.com", "acct-8").await;
    assert_eq!(second.id.as_str(), "cus_test_2");

    let requests = fake.requests_to("/v1/customers");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/customers");
    assert_eq!(requests[0].param("email"), Some("alice@example.com"));
    assert_eq!(requests[0].param("name"), Some("Alice Example"));
    assert_eq!(requests[0].param("metadata[account_id]"), Some("acct-7"));
    let stored = fake.customers();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["object"], "customer");
    assert_eq!(
        fake.customer("cus_test_2").unwrap()["email"],
        "bob@example.com"
    );
}

#[tokio::test]
async fn payment_checkout_is_created_paid_and_retrieved() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;

    let session: CheckoutSession = payment_session(customer.id.as_str(), "inv-42", "acct-7", 12900)
        .send(&client)
        .await
        .unwrap();
    let id = session.id.as_str().to_string();
    assert_eq!(id, "cs_test_1");
    assert_eq!(
        session.url.as_deref(),
        Some(format!("{}/checkout/{id}", fake.url()).as_str())
    );
    assert_eq!(session.status, Some(CheckoutSessionStatus::Open));
    assert_eq!(session.payment_status, CheckoutSessionPaymentStatus::Unpaid);
    assert_eq!(session.mode, CheckoutSessionMode::Payment);
    assert_eq!(session.amount_total, Some(12900));
    assert_eq!(
        session.currency.map(|c| c.to_string()).as_deref(),
        Some("cad")
    );
    assert_eq!(
        session.customer.as_ref().map(|c| c.id().as_str()),
        Some("cus_test_1")
    );
    assert_eq!(session.client_reference_id.as_deref(), Some("inv-42"));
    let metadata = session.metadata.unwrap();
    assert_eq!(metadata["invoice_id"], "inv-42");
    assert_eq!(metadata["account_id"], "acct-7");
    assert!(session.payment_intent.is_none());
    assert_eq!(session.payment_method_types, vec!["card".to_string()]);

    // What went over the wire.
    let sent = &fake.requests_to("/v1/checkout/sessions")[0];
    assert_eq!(sent.method, "POST");
    for (key, value) in [
        ("mode", "payment"),
        ("customer", "cus_test_1"),
        ("client_reference_id", "inv-42"),
        ("line_items[0][price_data][currency]", "cad"),
        ("line_items[0][price_data][unit_amount]", "12900"),
        (
            "line_items[0][price_data][product_data][name]",
            "Invoice INV-0042",
        ),
        ("line_items[0][quantity]", "1"),
        ("metadata[invoice_id]", "inv-42"),
        ("metadata[account_id]", "acct-7"),
        ("payment_intent_data[metadata][invoice_id]", "inv-42"),
        ("success_url", SUCCESS_URL),
        ("cancel_url", CANCEL_URL),
    ] {
        assert_eq!(
            sent.param(key),
            Some(value),
            "param {key} in {:?}",
            sent.params
        );
    }

    // The hosted page.
    let page = reqwest::get(format!("{}/checkout/{id}", fake.url()))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&id) && html.contains("129.00 CAD"), "{html}");

    // The customer pays.
    let event = fake.complete_checkout(&id);
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "checkout.session.completed");
    assert!(event["id"].as_str().unwrap().starts_with("evt_test_"));
    assert_eq!(event["livemode"], false);
    assert!(event["created"].is_i64());
    assert!(event["api_version"].is_string());
    assert!(event["pending_webhooks"].is_i64());
    assert!(event["request"].is_object());
    let object = &event["data"]["object"];
    assert_eq!(object["id"], id.as_str());
    assert_eq!(object["object"], "checkout.session");
    assert_eq!(object["status"], "complete");
    assert_eq!(object["payment_status"], "paid");
    assert_eq!(object["metadata"]["invoice_id"], "inv-42");
    let pi = object["payment_intent"].as_str().unwrap().to_string();
    assert!(pi.starts_with("pi_test_"));

    // Reconciliation sees it.
    let now: CheckoutSession = RetrieveCheckoutSession::new(id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(now.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(now.payment_status, CheckoutSessionPaymentStatus::Paid);
    assert_eq!(
        now.payment_intent.as_ref().map(|p| p.id().as_str()),
        Some(pi.as_str())
    );
    assert!(now.url.is_none());
    let get = fake.requests().pop().unwrap();
    assert_eq!(
        (get.method.as_str(), get.path.as_str()),
        ("GET", format!("/v1/checkout/sessions/{id}").as_str())
    );

    // The PaymentIntent event carries the invoice id.
    let succeeded = fake.payment_intent_succeeded_event(&id);
    assert_eq!(succeeded["type"], "payment_intent.succeeded");
    assert_ne!(succeeded["id"], event["id"]);
    let intent = &succeeded["data"]["object"];
    assert_eq!(intent["object"], "payment_intent");
    assert_eq!(intent["id"], pi.as_str());
    assert_eq!(intent["metadata"]["invoice_id"], "inv-42");
    assert_eq!(intent["amount"], 12900);
    assert_eq!(intent["currency"], "cad");
    assert_eq!(intent["customer"], "cus_test_1");
    assert_eq!(intent["status"], "succeeded");
    assert_eq!(fake.events().len(), 2);
}

#[tokio::test]
async fn payment_intent_event_can_come_before_completion() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    let session = payment_session(customer.id.as_str(), "inv-1", "acct-7", 500)
        .send(&client)
        .await
        .unwrap();
    let id = session.id.as_str();

    let succeeded = fake.payment_intent_succeeded_event(id);
    let pi = succeeded["data"]["object"]["id"].clone();
    assert_eq!(fake.session(id).unwrap()["status"], "open");
    let completed = fake.complete_checkout(id);
    assert_eq!(completed["data"]["object"]["payment_intent"], pi);
}

#[tokio::test]
async fn setup_checkout_collects_card_and_acss_debit() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    let cus = customer.id.as_str();

    let session = setup_session(cus, "acct-7", true)
        .send(&client)
        .await
        .unwrap();
    let id = session.id.as_str().to_string();
    assert_eq!(session.mode, CheckoutSessionMode::Setup);
    assert_eq!(session.status, Some(CheckoutSessionStatus::Open));
    assert_eq!(
        session.payment_status,
        CheckoutSessionPaymentStatus::NoPaymentRequired
    );
    assert_eq!(session.amount_total, None);
    let seti = session
        .setup_intent
        .as_ref()
        .unwrap()
        .id()
        .as_str()
        .to_string();
    assert!(seti.starts_with("seti_test_"), "{seti}");
    assert_eq!(
        session.payment_method_types,
        vec!["card".to_string(), "acss_debit".to_string()]
    );
    let acss = session.payment_method_options.unwrap().acss_debit.unwrap();
    assert_eq!(
        acss.currency.map(|c| c.as_str().to_string()).as_deref(),
        Some("cad")
    );
    let mandate = acss.mandate_options.unwrap();
    assert_eq!(mandate.payment_schedule.unwrap().as_str(), "sporadic");
    assert_eq!(mandate.transaction_type.unwrap().as_str(), "personal");
    assert_eq!(session.metadata.unwrap()["account_id"], "acct-7");
    assert_eq!(
        session.url.as_deref(),
        Some(format!("{}/checkout/{id}", fake.url()).as_str())
    );

    let sent = &fake.requests_to("/v1/checkout/sessions")[0];
    for (key, value) in [
        ("mode", "setup"),
        ("customer", cus),
        ("currency", "cad"),
        ("allowed_payment_method_types[0]", "card"),
        ("allowed_payment_method_types[1]", "acss_debit"),
        ("payment_method_options[acss_debit][currency]", "cad"),
        (
            "payment_method_options[acss_debit][mandate_options][payment_schedule]",
            "sporadic",
        ),
        (
            "payment_method_options[acss_debit][mandate_options][transaction_type]",
            "personal",
        ),
        ("metadata[account_id]", "acct-7"),
        ("success_url", SUCCESS_URL),
        ("cancel_url", CANCEL_URL),
    ] {
        assert_eq!(
            sent.param(key),
            Some(value),
            "param {key} in {:?}",
            sent.params
        );
    }

    // Default completion: Visa 4242, 12/2030.
    let event = fake.complete_checkout(&id);
    assert_eq!(event["type"], "checkout.session.completed");
    assert_eq!(event["data"]["object"]["mode"], "setup");
    assert_eq!(event["data"]["object"]["setup_intent"], seti.as_str());
    assert_eq!(event["data"]["object"]["status"], "complete");
    let intent = fake.setup_intent(&seti).unwrap();
    assert_eq!(intent["status"], "succeeded");
    let card_id = intent["payment_method"].as_str().unwrap().to_string();

    // A second session, completed with a bank account.
    let second = setup_session(cus, "acct-7", true)
        .send(&client)
        .await
        .unwrap();
    fake.complete_setup_with(
        second.id.as_str(),
        PaymentMethodKind::acss_debit("Royal Bank of Canada", "6789"),
    );

    let list = ListPaymentMethodsCustomer::new(cus)
        .send(&client)
        .await
        .unwrap();
    assert!(!list.has_more);
    assert_eq!(list.url, format!("/v1/customers/{cus}/payment_methods"));
    assert_eq!(list.data.len(), 2);
    let bank = &list.data[0]; // newest first
    assert_eq!(bank.type_, PaymentMethodType::AcssDebit);
    let acss = bank.acss_debit.as_ref().unwrap();
    assert_eq!(acss.bank_name.as_deref(), Some("Royal Bank of Canada"));
    assert_eq!(acss.last4.as_deref(), Some("6789"));
    assert!(bank.card.is_none());
    let card = &list.data[1];
    assert_eq!(card.id.as_str(), card_id);
    assert_eq!(card.type_, PaymentMethodType::Card);
    assert_eq!(card.customer.as_ref().map(|c| c.id().as_str()), Some(cus));
    let details = card.card.as_ref().unwrap();
    assert_eq!(details.brand, "visa");
    assert_eq!(details.last4, "4242");
    assert_eq!((details.exp_month, details.exp_year), (12, 2030));

    let cards = ListPaymentMethodsCustomer::new(cus)
        .type_(ListPaymentMethodsCustomerType::Card)
        .limit(10)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(cards.data.len(), 1);
    assert_eq!(cards.data[0].id.as_str(), card_id);
    let listed = fake.requests().pop().unwrap();
    assert_eq!(listed.method, "GET");
    assert_eq!(listed.path, format!("/v1/customers/{cus}/payment_methods"));
    assert_eq!(listed.param("type"), Some("card"));
    assert_eq!(listed.param("limit"), Some("10"));

    let first = ListPaymentMethodsCustomer::new(cus)
        .limit(1)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(first.data.len(), 1);
    assert!(first.has_more);
    assert_eq!(fake.payment_methods_of(cus).len(), 2);
}

#[tokio::test]
async fn setup_with_card_only() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    let session = setup_session(customer.id.as_str(), "acct-7", false)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(session.payment_method_types, vec!["card".to_string()]);
    let sent = &fake.requests_to("/v1/checkout/sessions")[0];
    assert!(
        sent.params
            .keys()
            .all(|k| !k.starts_with("payment_method_options"))
    );

    fake.complete_setup_with(
        session.id.as_str(),
        PaymentMethodKind::card("mastercard", "4444", 3, 2031),
    );
    let methods = fake.payment_methods_of(customer.id.as_str());
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0]["card"]["brand"], "mastercard");
    assert_eq!(methods[0]["card"]["exp_year"], 2031);
}

#[tokio::test]
async fn detaches_a_payment_method() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    let cus = customer.id.as_str();
    let visa = fake.attach_payment_method(cus, PaymentMethodKind::visa_4242());
    let bank = fake.attach_payment_method(cus, PaymentMethodKind::acss_debit("TD", "1111"));
    assert_eq!(fake.payment_methods_of(cus).len(), 2);

    let detached = DetachPaymentMethod::new(visa.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(detached.id.as_str(), visa);
    assert!(detached.customer.is_none());
    assert_eq!(detached.card.unwrap().last4, "4242");
    let sent = fake.requests().pop().unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        (
            "POST",
            format!("/v1/payment_methods/{visa}/detach").as_str()
        )
    );

    let list = ListPaymentMethodsCustomer::new(cus)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(
        list.data
            .iter()
            .map(|pm| pm.id.as_str())
            .collect::<Vec<_>>(),
        vec![bank.as_str()]
    );

    // Again, or an unknown id: resource_missing.
    for id in [visa.as_str(), "pm_nope"] {
        let (err, status) = stripe_error(
            DetachPaymentMethod::new(id)
                .send(&client)
                .await
                .unwrap_err(),
        );
        assert_eq!(status, 404);
        assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
        assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
        assert!(err.message.unwrap().contains(id));
    }

    // The events: after an API detach, and when detached on Stripe's side.
    let event = fake.payment_method_detached_event(&visa);
    assert_eq!(event["type"], "payment_method.detached");
    assert_eq!(event["data"]["object"]["id"], visa.as_str());
    assert_eq!(event["data"]["object"]["customer"], Value::Null);
    assert_eq!(event["data"]["previous_attributes"]["customer"], cus);
    let event = fake.payment_method_detached_event(&bank);
    assert_eq!(event["data"]["previous_attributes"]["customer"], cus);
    assert!(fake.payment_methods_of(cus).is_empty());
}

#[tokio::test]
async fn unknown_objects_and_routes_are_not_found() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);

    let (err, status) = stripe_error(
        RetrieveCheckoutSession::new("cs_nope")
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));

    let (err, status) = stripe_error(
        ListPaymentMethodsCustomer::new("cus_nope")
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));

    // A session for a customer that does not exist is refused.
    let (err, status) = stripe_error(
        payment_session("cus_nope", "inv-1", "a", 100)
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert_eq!(err.param.as_deref(), Some("customer"));
    assert!(fake.sessions().is_empty());

    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}/v1/charges", fake.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/charges")
    );

    let page = reqwest::get(format!("{}/checkout/cs_nope", fake.url()))
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
}

#[tokio::test]
async fn wrong_or_missing_key_gets_401() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let wrong = ClientBuilder::new("sk_test_wrong")
        .url(fake.url())
        .build()
        .unwrap();
    let (err, status) = stripe_error(
        CreateCustomer::new()
            .email("a@b.c")
            .send(&wrong)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 401);
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    assert!(err.message.unwrap().contains("Invalid API Key"));
    assert!(fake.customers().is_empty());
    assert_eq!(
        fake.requests().len(),
        1,
        "unauthorized calls are recorded too"
    );

    let response = reqwest::Client::new()
        .post(format!("{}/v1/customers", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(fake.customers().is_empty());
}

#[tokio::test]
async fn server_error_fault_surfaces_as_api_error() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    fake.set_fault(Fault::ServerError);
    assert_eq!(fake.fault(), Fault::ServerError);

    let (err, status) = stripe_error(
        CreateCustomer::new()
            .email("a@b.c")
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 500);
    assert_eq!(err.type_, ApiErrorsType::ApiError);
    let (_, status) = stripe_error(
        RetrieveCheckoutSession::new("cs_test_1")
            .send(&client)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 500);
    assert!(fake.customers().is_empty());
    assert_eq!(fake.requests().len(), 2);

    fake.set_fault(Fault::None);
    create_customer(&client, "a@b.c", "acct-1").await;
    assert_eq!(fake.customers().len(), 1);
}

#[tokio::test]
async fn hang_fault_never_answers() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    fake.set_fault(Fault::Hang);

    let request = CreateCustomer::new().email("a@b.c");
    let call = request.send(&client);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err()
    );
    assert_eq!(fake.requests().len(), 1, "the request was received");

    // With a client-side timeout the client reports it.
    let impatient = ClientBuilder::new(KEY)
        .url(fake.url())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = CreateCustomer::new().send(&impatient).await.unwrap_err();
    assert!(matches!(err, StripeError::Timeout), "{err:?}");

    fake.set_fault(Fault::None);
    create_customer(&client, "a@b.c", "acct-1").await;
    assert_eq!(fake.customers().len(), 1);

    // The checkout page is not subject to faults.
    fake.set_fault(Fault::Hang);
    let page = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(format!("{}/checkout/cs_x", fake.url())),
    )
    .await
    .expect("the page answers despite Fault::Hang")
    .unwrap();
    assert_eq!(page.status(), 404);
    fake.shutdown();
}

#[tokio::test]
async fn checkout_page_button_completes_and_redirects() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    let session = payment_session(customer.id.as_str(), "inv-9", "acct-7", 2500)
        .send(&client)
        .await
        .unwrap();
    let id = session.id.as_str();

    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser
        .post(format!("{}/checkout/{id}/complete", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        SUCCESS_URL.replace("{CHECKOUT_SESSION_ID}", id)
    );
    assert_eq!(fake.session(id).unwrap()["payment_status"], "paid");
    assert_eq!(fake.events()[0]["type"], "checkout.session.completed");

    let again = browser
        .post(format!("{}/checkout/{id}/complete", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn expired_sessions() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    let session = payment_session(customer.id.as_str(), "inv-3", "acct-7", 100)
        .send(&client)
        .await
        .unwrap();
    let event = fake.expire_checkout(session.id.as_str());
    assert_eq!(event["type"], "checkout.session.expired");
    let now = RetrieveCheckoutSession::new(session.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(now.status, Some(CheckoutSessionStatus::Expired));
    assert_eq!(now.payment_status, CheckoutSessionPaymentStatus::Unpaid);
}

/// async-stripe 1.0.0-rc.10 has no `payment_method_types` setter on
/// `CreateCheckoutSession` (only `allowed_payment_method_types`); if the literal
/// parameter is needed, it can be appended to the form body the builder produces.
#[tokio::test]
async fn raw_payment_method_types_are_honoured() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;

    let mut request = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Setup)
        .customer(customer.id.as_str())
        .success_url(SUCCESS_URL)
        .build();
    let body = request.body.get_or_insert_with(String::new);
    body.push_str("&payment_method_types[0]=card&payment_method_types[1]=acss_debit");
    let session: CheckoutSession = request
        .customize::<CheckoutSession>()
        .send(&client)
        .await
        .unwrap();
    assert_eq!(
        session.payment_method_types,
        vec!["card".to_string(), "acss_debit".to_string()]
    );
    let sent = &fake.requests_to("/v1/checkout/sessions")[0];
    assert_eq!(sent.param("payment_method_types[1]"), Some("acss_debit"));
}

/// Serves `body` with `status` to every request, to feed event objects to the client.
async fn canned(status: u16, body: Value) -> String {
    use warp::Filter;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = body.to_string();
    let status = warp::http::StatusCode::from_u16(status).unwrap();
    let route = warp::any().map(move || {
        warp::reply::with_status(
            warp::reply::with_header(body.clone(), "content-type", "application/json"),
            status,
        )
    });
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}")
}

#[tokio::test]
async fn event_objects_deserialize_as_stripe_types() {
    let fake = FakeStripe::start(KEY).await.unwrap();
    let client = client(&fake);
    let customer = create_customer(&client, "alice@example.com", "acct-7").await;
    let cus = customer.id.as_str();
    let pay = payment_session(cus, "inv-5", "acct-7", 700)
        .send(&client)
        .await
        .unwrap();
    let setup = setup_session(cus, "acct-7", true)
        .send(&client)
        .await
        .unwrap();
    let paid = fake.complete_checkout(pay.id.as_str());
    let set_up = fake.complete_checkout(setup.id.as_str());
    let intent = fake.payment_intent_succeeded_event(pay.id.as_str());
    let pm = fake.payment_methods_of(cus)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let detached = fake.payment_method_detached_event(&pm);

    for event in [&paid, &set_up] {
        let url = canned(200, event["data"]["object"].clone()).await;
        let other = ClientBuilder::new(KEY).url(url).build().unwrap();
        let session = RetrieveCheckoutSession::new("cs_any")
            .send(&other)
            .await
            .unwrap();
        assert_eq!(session.status, Some(CheckoutSessionStatus::Complete));
    }

    let url = canned(200, detached["data"]["object"].clone()).await;
    let other = ClientBuilder::new(KEY).url(url).build().unwrap();
    let method = DetachPaymentMethod::new("pm_any")
        .send(&other)
        .await
        .unwrap();
    assert_eq!(method.id.as_str(), pm);
    assert!(method.customer.is_none());

    // No PaymentIntent request is enabled in our features; an error body can carry one.
    let body =
        json!({ "error": { "type": "card_error", "payment_intent": intent["data"]["object"] } });
    let url = canned(402, body).await;
    let other = ClientBuilder::new(KEY).url(url).build().unwrap();
    let (err, status) = stripe_error(
        RetrieveCheckoutSession::new("cs_any")
            .send(&other)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 402);
    let pi = err.payment_intent.expect("the PaymentIntent deserialized");
    assert_eq!(pi.amount, 700);
    assert_eq!(pi.metadata["invoice_id"], "inv-5");
    assert_eq!(pi.currency.to_string(), "cad");
}

#[test]
fn sign_matches_a_plain_hmac_check() {
    let payload = br#"{"id":"evt_test_1","type":"checkout.session.completed"}"#;
    let secret = "whsec_test_secret";
    let header = sign(payload, secret, 1_700_000_000);

    let (t, v1) = header.split_once(',').unwrap();
    assert_eq!(t, "t=1700000000");
    let signature = hex::decode(v1.strip_prefix("v1=").unwrap()).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = b"1700000000.".to_vec();
    signed.extend_from_slice(payload);
    ring::hmac::verify(&key, &signed, &signature).expect("valid signature");
    assert!(ring::hmac::verify(&key, b"1700000001.{}", &signature).is_err());
    // Another secret or timestamp gives another signature.
    assert_ne!(sign(payload, "whsec_other", 1_700_000_000), header);
    assert_ne!(sign(payload, secret, 1_700_000_001), header);
}
