//! [`FakeStripe`]: a local HTTP server that answers the part of the Stripe API the
//! application uses, so billing can be tested without the internet.
//!
//! The fake speaks Stripe's wire format: form-encoded requests with bracketed keys
//! (`line_items[0][price_data][unit_amount]=12900`), `Authorization: Bearer <key>`, and
//! JSON objects shaped like Stripe's, complete enough that async-stripe's response types
//! deserialize them. It serves:
//!
//! | Call | Answer |
//! |------|--------|
//! | `POST /v1/customers` | a Customer (`cus_test_<n>`) |
//! | `POST /v1/checkout/sessions` (`mode=payment` or `mode=setup`) | a Checkout Session (`cs_test_<n>`) |
//! | `GET /v1/checkout/sessions/{id}` | the session as it is now (`expand[]=payment_intent` inlines the PaymentIntent) |
//! | `POST /v1/checkout/sessions/{id}/expire` | the session, now `expired` (only an open one) |
//! | `GET /v1/customers/{id}/payment_methods` | a List of the customer's PaymentMethods |
//! | `POST /v1/payment_methods/{id}/detach` | the PaymentMethod, now with `customer: null` |
//! | `GET /checkout/{id}` | a small HTML "hosted checkout" page (the session's `url`) |
//! | `POST /checkout/{id}/complete` | completes the session like a paying customer, then redirects to its `success_url` |
//!
//! Like Stripe, a `POST` with an `Idempotency-Key` header is done once per key: the same key
//! with the same parameters answers the first answer again (header `Idempotent-Replayed:
//! true`) without creating anything; with other parameters it answers 400
//! `idempotency_error`. Every request's key is recorded ([`RecordedRequest::idempotency_key`]),
//! and [`FakeStripe::checkout_sessions_created`] counts the sessions really created.
//!
//! Anything else under `/v1/` answers 404 with a Stripe-style error body. A test plays
//! the customer's side on Stripe with [`FakeStripe::complete_checkout`] and friends, which
//! return the webhook **event** Stripe would send; sign it with [`sign`] and post it to
//! the application's webhook endpoint.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use latchkey_testkit::stripe::{FakeStripe, sign};
//!
//! let fake = FakeStripe::start("sk_test_fake").await?;
//! // ... configure the application with base URL `fake.url()` and key `sk_test_fake` ...
//! // ... the application creates a checkout session; the test "pays" it:
//! let session_id = fake.sessions()[0]["id"].as_str().unwrap().to_string();
//! let event = fake.complete_checkout(&session_id);
//! let payload = serde_json::to_vec(&event).unwrap();
//! let header = sign(&payload, "whsec_test", 1_700_000_000);
//! // ... POST payload to /webhooks/stripe with `Stripe-Signature: {header}` ...
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::Filter;
use warp::Reply;
use warp::http::{Method, StatusCode, header};
use warp::reply::Response;

/// The API version the fake reports in events: the one async-stripe 1.0.0-rc.10 pins
/// (`stripe_shared::version::VERSION`).
pub const API_VERSION: &str = "2026-09-30.endive";

/// How the fake answers API calls (everything under `/v1/`); switch at run time with
/// [`FakeStripe::set_fault`]. The hosted checkout page is never affected.
///
/// Requests are recorded (see [`FakeStripe::requests`]) whatever the fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally (the default).
    #[default]
    None,
    /// Answer every API call with `500` and a Stripe `api_error` body; nothing changes.
    ServerError,
    /// Read the request, then never answer: the call is held until the client gives up
    /// or the fake shuts down. Switching the fault back does not release calls already
    /// held; new calls are answered normally.
    Hang,
    /// Do the call (create what it creates, remember its idempotency key), then never
    /// answer, like [`Fault::Hang`]: Stripe did the work but the answer was lost, as when
    /// the client times out. A retry with the same idempotency key gets the first answer.
    LoseAnswer,
}

/// A payment method for [`FakeStripe::complete_setup_with`] and
/// [`FakeStripe::attach_payment_method`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethodKind {
    /// `type=card`. `brand` as Stripe spells it: `visa`, `mastercard`, `amex`, ...
    Card {
        brand: String,
        last4: String,
        exp_month: i64,
        exp_year: i64,
    },
    /// `type=acss_debit` (Canadian pre-authorized debit).
    AcssDebit { bank_name: String, last4: String },
}

impl PaymentMethodKind {
    /// Stripe's test Visa: ending 4242, expiring 12/2030.
    pub fn visa_4242() -> Self {
        Self::card("visa", "4242", 12, 2030)
    }

    /// A card.
    pub fn card(
        brand: impl Into<String>,
        last4: impl Into<String>,
        exp_month: i64,
        exp_year: i64,
    ) -> Self {
        Self::Card {
            brand: brand.into(),
            last4: last4.into(),
            exp_month,
            exp_year,
        }
    }

    /// A Canadian pre-authorized debit.
    pub fn acss_debit(bank_name: impl Into<String>, last4: impl Into<String>) -> Self {
        Self::AcssDebit {
            bank_name: bank_name.into(),
            last4: last4.into(),
        }
    }

    /// The PaymentMethod `type`: `card` or `acss_debit`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Card { .. } => "card",
            Self::AcssDebit { .. } => "acss_debit",
        }
    }
}

impl Default for PaymentMethodKind {
    fn default() -> Self {
        Self::visa_4242()
    }
}

/// One API call as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, with the `/v1` prefix: `/v1/checkout/sessions`.
    pub path: String,
    /// Form parameters (POST body) and query parameters, decoded, with bracketed keys
    /// kept flat: `"line_items[0][price_data][unit_amount]" -> "12900"`. A key sent
    /// twice keeps its last value.
    pub params: BTreeMap<String, String>,
    /// The `Idempotency-Key` header, if the request carried one.
    pub idempotency_key: Option<String>,
}

impl RecordedRequest {
    /// The value of one parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

/// A fake Stripe API on a local TCP port.
///
/// Cloning gives another handle to the same server. The server stops when the last
/// handle is dropped or on [`shutdown`](Self::shutdown).
///
/// The methods that drive Stripe's side (`complete_checkout`, ...) panic when given an
/// id the fake does not know or a session in the wrong state: they are test tools, and a
/// panic with a clear message is the most useful outcome of a test mistake.
#[derive(Clone)]
pub struct FakeStripe {
    shared: Arc<Shared>,
    /// Dropping the last sender (or sending `true`) stops the server.
    control: Arc<watch::Sender<bool>>,
}

struct Shared {
    addr: SocketAddr,
    secret_key: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    fault: Fault,
    counters: HashMap<&'static str, u64>,
    requests: Vec<RecordedRequest>,
    customers: Vec<Value>,
    sessions: Vec<SessionRecord>,
    payment_methods: Vec<PaymentMethodRecord>,
    payment_intents: Vec<Value>,
    setup_intents: Vec<Value>,
    events: Vec<Value>,
    /// The first answer to each idempotency key: (method and path, parameters, status, body).
    idempotent: HashMap<String, IdempotentAnswer>,
}

struct IdempotentAnswer {
    request: (String, String),
    params: BTreeMap<String, String>,
    status: StatusCode,
    body: Value,
}

struct SessionRecord {
    json: Value,
    /// `payment_intent_data[metadata][*]`, carried over to the PaymentIntent.
    payment_intent_metadata: Map<String, Value>,
    /// `payment_intent_data[description]`.
    payment_intent_description: Option<String>,
}

struct PaymentMethodRecord {
    json: Value,
    /// The customer it was detached from, for the `payment_method.detached` event.
    detached_from: Option<String>,
}

impl fmt::Debug for FakeStripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeStripe")
            .field("url", &self.url())
            .field("fault", &self.fault())
            .finish_non_exhaustive()
    }
}

impl FakeStripe {
    /// Binds `127.0.0.1:0` and starts serving. Every API call must carry
    /// `Authorization: Bearer {secret_key}`.
    pub async fn start(secret_key: &str) -> io::Result<FakeStripe> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (control, mut stop) = watch::channel(false);
        let shared = Arc::new(Shared {
            addr,
            secret_key: secret_key.to_string(),
            state: Mutex::new(State::default()),
        });

        let handler_shared = Arc::clone(&shared);
        let handler_stop = stop.clone();
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::header::optional::<String>("idempotency-key"))
            .and(warp::body::bytes())
            .then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      auth: Option<String>,
                      key: Option<String>,
                      body: Bytes| {
                    let shared = Arc::clone(&handler_shared);
                    let stop = handler_stop.clone();
                    async move {
                        let call = Call {
                            method,
                            path: path.as_str(),
                            query: &query,
                            auth: auth.as_deref(),
                            idempotency_key: key,
                            body: &body,
                        };
                        shared.handle(call, stop).await
                    }
                },
            );

        tokio::spawn(
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move {
                    // Ends on `true` or when the last handle (the sender) is dropped.
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .run(),
        );

        Ok(FakeStripe {
            shared,
            control: Arc::new(control),
        })
    }

    /// The base URL to configure the client with: `http://127.0.0.1:{port}` (no trailing
    /// slash; async-stripe appends `/v1/...` itself).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The port the fake listens on.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The secret key the fake accepts.
    pub fn secret_key(&self) -> &str {
        &self.shared.secret_key
    }

    /// Stops the server; held ([`Fault::Hang`]) calls are released with a 503.
    pub fn shutdown(&self) {
        self.control.send_replace(true);
    }

    /// Switches how API calls are answered.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.lock().fault = fault;
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.shared.lock().fault
    }

    // ----- inspection -----

    /// Every API call received so far, in order (also unauthorized and faulted ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The API calls whose path starts with `path_prefix` (e.g. `/v1/checkout/sessions`).
    pub fn requests_to(&self, path_prefix: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// The `Idempotency-Key` of every `POST` to paths starting with `path_prefix`, in order
    /// (`None` for a request without one).
    pub fn idempotency_keys(&self, path_prefix: &str) -> Vec<Option<String>> {
        self.requests_to(path_prefix)
            .into_iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.idempotency_key)
            .collect()
    }

    /// How many checkout sessions were really created (a replayed idempotent request
    /// creates none).
    pub fn checkout_sessions_created(&self) -> usize {
        self.shared.lock().sessions.len()
    }

    /// Forgets the recorded requests (the objects stay).
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Every customer, in creation order, as the API shows them.
    pub fn customers(&self) -> Vec<Value> {
        self.shared.lock().customers.clone()
    }

    /// One customer.
    pub fn customer(&self, id: &str) -> Option<Value> {
        self.shared.lock().customer(id).cloned()
    }

    /// Every checkout session, in creation order, as the API shows them now.
    pub fn sessions(&self) -> Vec<Value> {
        self.shared
            .lock()
            .sessions
            .iter()
            .map(|s| s.json.clone())
            .collect()
    }

    /// One checkout session.
    pub fn session(&self, id: &str) -> Option<Value> {
        let state = self.shared.lock();
        state
            .session_index(id)
            .map(|i| state.sessions[i].json.clone())
    }

    /// The payment methods attached to `customer`, newest first (the order the API lists
    /// them in).
    pub fn payment_methods_of(&self, customer: &str) -> Vec<Value> {
        self.shared
            .lock()
            .attached_to(customer)
            .into_iter()
            .cloned()
            .collect()
    }

    /// One payment method, attached or not.
    pub fn payment_method(&self, id: &str) -> Option<Value> {
        let state = self.shared.lock();
        state
            .pm_index(id)
            .map(|i| state.payment_methods[i].json.clone())
    }

    /// One PaymentIntent (created when a payment-mode session is paid).
    pub fn payment_intent(&self, id: &str) -> Option<Value> {
        self.shared
            .lock()
            .payment_intents
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
    }

    /// One SetupIntent (created with each setup-mode session).
    pub fn setup_intent(&self, id: &str) -> Option<Value> {
        self.shared
            .lock()
            .setup_intents
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
    }

    /// Every event the driving methods produced, in order.
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().events.clone()
    }

    // ----- driving Stripe's side -----

    /// The customer completes the hosted checkout. Payment mode: `status=complete`,
    /// `payment_status=paid`, and a `pi_test_<n>` PaymentIntent (reused if
    /// [`payment_intent_succeeded_event`](Self::payment_intent_succeeded_event) made one
    /// already). Setup mode: `status=complete` and a Visa ending 4242 (exp 12/2030) is
    /// attached to the session's customer and set on its SetupIntent.
    ///
    /// Returns the `checkout.session.completed` event. Completing a session that is
    /// complete already changes nothing and returns a new event (a new `evt_` id).
    ///
    /// # Panics
    /// If the session is unknown or expired.
    pub fn complete_checkout(&self, session_id: &str) -> Value {
        self.shared
            .lock()
            .complete(session_id, PaymentMethodKind::visa_4242())
    }

    /// Like [`complete_checkout`](Self::complete_checkout), for a setup-mode session,
    /// collecting the given payment method.
    ///
    /// # Panics
    /// If the session is unknown, expired, or not in setup mode.
    pub fn complete_setup_with(&self, session_id: &str, kind: PaymentMethodKind) -> Value {
        let mut state = self.shared.lock();
        let index = state.session_index_or_panic(session_id);
        assert_eq!(
            state.sessions[index].json["mode"], "setup",
            "fake Stripe: complete_setup_with({session_id}): the session is not in setup mode"
        );
        state.complete(session_id, kind)
    }

    /// The customer completes a payment-mode session paying with `kind`. A card pays at once
    /// (as [`complete_checkout`](Self::complete_checkout)); a pre-authorized debit
    /// (`AcssDebit`) leaves the money on its way, as Stripe does: the session is `complete`
    /// with `payment_status=unpaid` and its PaymentIntent is `processing`, until
    /// [`async_payment_succeeded_event`](Self::async_payment_succeeded_event) or
    /// [`async_payment_failed_event`](Self::async_payment_failed_event) (or the
    /// `payment_intent_*` events) settle it. Returns the `checkout.session.completed` event.
    ///
    /// # Panics
    /// If the session is unknown, expired, or not in payment mode.
    pub fn complete_payment_with(&self, session_id: &str, kind: PaymentMethodKind) -> Value {
        let mut state = self.shared.lock();
        let index = state.session_index_or_panic(session_id);
        assert_eq!(
            state.sessions[index].json["mode"], "payment",
            "fake Stripe: complete_payment_with({session_id}): the session is not in payment mode"
        );
        state.complete(session_id, kind)
    }

    /// The pending debit of a completed payment session succeeded: its PaymentIntent is
    /// `succeeded`, the session `payment_status=paid`. Returns the
    /// `checkout.session.async_payment_succeeded` event.
    ///
    /// # Panics
    /// If the session is unknown or has no PaymentIntent (not completed).
    pub fn async_payment_succeeded_event(&self, session_id: &str) -> Value {
        let mut state = self.shared.lock();
        let index = state.settle(session_id, true);
        let object = state.sessions[index].json.clone();
        state.event("checkout.session.async_payment_succeeded", object, None)
    }

    /// The pending debit of a completed payment session failed: its PaymentIntent is back to
    /// `requires_payment_method` with a `last_payment_error`, the session stays
    /// `payment_status=unpaid`. Returns the `checkout.session.async_payment_failed` event.
    ///
    /// # Panics
    /// If the session is unknown or has no PaymentIntent (not completed).
    pub fn async_payment_failed_event(&self, session_id: &str) -> Value {
        let mut state = self.shared.lock();
        let index = state.settle(session_id, false);
        let object = state.sessions[index].json.clone();
        state.event("checkout.session.async_payment_failed", object, None)
    }

    /// Like [`async_payment_failed_event`](Self::async_payment_failed_event), but returns the
    /// `payment_intent.payment_failed` event (the PaymentIntent, with `metadata.invoice_id`).
    ///
    /// # Panics
    /// If the session is unknown or has no PaymentIntent (not completed).
    pub fn payment_intent_payment_failed_event(&self, session_id: &str) -> Value {
        let mut state = self.shared.lock();
        let index = state.settle(session_id, false);
        let pi_id = state.sessions[index].json["payment_intent"].clone();
        let pi = state
            .payment_intents
            .iter()
            .find(|p| p["id"] == pi_id)
            .cloned()
            .expect("a settled session has its PaymentIntent");
        state.event("payment_intent.payment_failed", pi, None)
    }

    /// The session expires without being completed (`status=expired`). Returns the
    /// `checkout.session.expired` event.
    ///
    /// # Panics
    /// If the session is unknown or not open.
    pub fn expire_checkout(&self, session_id: &str) -> Value {
        let mut state = self.shared.lock();
        let index = state.session_index_or_panic(session_id);
        let session = &mut state.sessions[index].json;
        assert_eq!(
            session["status"], "open",
            "fake Stripe: expire_checkout({session_id}): the session is not open"
        );
        session["status"] = json!("expired");
        session["url"] = Value::Null;
        let object = session.clone();
        state.event("checkout.session.expired", object, None)
    }

    /// Attaches a new payment method to `customer_id` directly (as if set up earlier);
    /// returns its id (`pm_test_<n>`).
    ///
    /// # Panics
    /// If the customer is unknown.
    pub fn attach_payment_method(&self, customer_id: &str, kind: PaymentMethodKind) -> String {
        let mut state = self.shared.lock();
        assert!(
            state.customer(customer_id).is_some(),
            "fake Stripe: attach_payment_method: no such customer {customer_id}"
        );
        state.create_payment_method(Some(customer_id), &kind)
    }

    /// The `payment_intent.succeeded` event for a payment-mode session: the PaymentIntent
    /// carries `amount`, `currency`, `customer` and the `payment_intent_data[metadata]`
    /// given at session creation (`metadata.invoice_id`). If the session was not
    /// completed yet, its PaymentIntent is created now (the session stays as it is:
    /// Stripe does not order its webhooks).
    ///
    /// # Panics
    /// If the session is unknown or not in payment mode.
    pub fn payment_intent_succeeded_event(&self, session_id: &str) -> Value {
        let mut state = self.shared.lock();
        let index = state.session_index_or_panic(session_id);
        assert_eq!(
            state.sessions[index].json["mode"], "payment",
            "fake Stripe: payment_intent_succeeded_event({session_id}): the session is not in payment mode"
        );
        let pi_id = state.ensure_payment_intent(index, &PaymentMethodKind::visa_4242());
        if state.sessions[index].json["status"] == "complete" {
            // A debit still on its way settles now.
            state.settle(session_id, true);
        }
        let pi = state
            .payment_intents
            .iter()
            .find(|p| p["id"] == pi_id.as_str())
            .cloned()
            .expect("payment intent just ensured");
        state.event("payment_intent.succeeded", pi, None)
    }

    /// The `payment_method.detached` event for `pm_id`: `data.object` is the payment
    /// method with `customer: null`, `data.previous_attributes.customer` the customer it
    /// was attached to. If it is still attached, it is detached now (as if the customer
    /// removed it on Stripe's side).
    ///
    /// # Panics
    /// If the payment method is unknown or was never attached to a customer.
    pub fn payment_method_detached_event(&self, pm_id: &str) -> Value {
        let mut state = self.shared.lock();
        let index = state
            .pm_index(pm_id)
            .unwrap_or_else(|| panic!("fake Stripe: no such payment method {pm_id}"));
        if state.payment_methods[index].json["customer"].is_string() {
            state.detach(index);
        }
        let record = &state.payment_methods[index];
        let previous = record.detached_from.clone().unwrap_or_else(|| {
            panic!("fake Stripe: payment method {pm_id} was never attached to a customer")
        });
        let object = record.json.clone();
        state.event(
            "payment_method.detached",
            object,
            Some(json!({ "customer": previous })),
        )
    }
}

/// The `Stripe-Signature` header value for `payload`, exactly as Stripe computes it:
/// `t={timestamp},v1={hex HMAC-SHA256(secret, "{timestamp}.{payload}")}`. `secret` is the
/// endpoint's signing secret (`whsec_...`), used as is (bytes of the string).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(payload);
    let tag = ring::hmac::sign(&key, &signed);
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

/// [`sign`] with the current time as the timestamp.
pub fn sign_now(payload: &[u8], secret: &str) -> String {
    sign(payload, secret, now())
}

// ===== request handling =====

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn handle(&self, call: Call<'_>, mut stop: watch::Receiver<bool>) -> Response {
        let Call {
            method,
            path,
            query,
            auth,
            idempotency_key,
            body,
        } = call;
        if let Some(rest) = path.strip_prefix("/checkout/") {
            return self.checkout_page(&method, rest);
        }

        let mut params = decode_form(query.as_bytes());
        params.extend(decode_form(body));
        let fault = {
            let mut state = self.lock();
            state.requests.push(RecordedRequest {
                method: method.as_str().to_string(),
                path: path.to_string(),
                params: params.clone(),
                idempotency_key: idempotency_key.clone(),
            });
            state.fault
        };

        match fault {
            Fault::None | Fault::LoseAnswer => {}
            Fault::ServerError => {
                return error_reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    None,
                    None,
                    "An unknown error occurred (fake Stripe: Fault::ServerError).",
                );
            }
            Fault::Hang => {
                let _ = stop.wait_for(|stopped| *stopped).await;
                return error_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    None,
                    None,
                    "The fake Stripe server is shutting down.",
                );
            }
        }

        let expected = format!("Bearer {}", self.secret_key);
        match auth {
            None => {
                return error_reply(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    None,
                    None,
                    "You did not provide an API key. You need to provide your API key in the \
                     Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                );
            }
            Some(given) if given != expected => {
                let key = given.strip_prefix("Bearer ").unwrap_or(given);
                return error_reply(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    None,
                    None,
                    &format!("Invalid API Key provided: {}", redact_key(key)),
                );
            }
            Some(_) => {}
        }

        let response = self.api_call(&method, path, params, idempotency_key);
        if fault == Fault::LoseAnswer {
            let _ = stop.wait_for(|stopped| *stopped).await;
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                None,
                None,
                "The fake Stripe server is shutting down.",
            );
        }
        response
    }

    /// Does an authorized API call (once per idempotency key) and answers it.
    fn api_call(
        &self,
        method: &Method,
        path: &str,
        params: BTreeMap<String, String>,
        idempotency_key: Option<String>,
    ) -> Response {
        let segments: Vec<&str> = match path.strip_prefix("/v1/") {
            Some(rest) => rest.split('/').collect(),
            None => Vec::new(),
        };
        let mut state = self.lock();
        // Stripe does a POST once per idempotency key.
        let request = (method.as_str().to_string(), path.to_string());
        let key = idempotency_key.filter(|_| *method == Method::POST);
        if let Some(key) = &key
            && let Some(first) = state.idempotent.get(key)
        {
            if first.request != request || first.params != params {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    None,
                    None,
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{key}' if you \
                         meant to execute a different request."
                    ),
                );
            }
            let replay = warp::reply::with_status(warp::reply::json(&first.body), first.status);
            return warp::reply::with_header(replay, "idempotent-replayed", "true").into_response();
        }
        let result = match (method.as_str(), segments.as_slice()) {
            ("POST", ["customers"]) => Ok(state.create_customer(&params)),
            ("POST", ["checkout", "sessions"]) => state.create_session(&params, self.addr),
            ("GET", ["checkout", "sessions", id]) => state.retrieve_session(id, &params),
            ("POST", ["checkout", "sessions", id, "expire"]) => state.api_expire(id),
            ("GET", ["customers", id, "payment_methods"]) => {
                state.list_payment_methods(id, &params)
            }
            ("POST", ["payment_methods", id, "detach"]) => state.api_detach(id),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Unrecognized request URL ({method}: {path}). (fake Stripe)"),
            )),
        };
        if let Some(key) = key {
            let (status, body) = match &result {
                Ok(value) => (StatusCode::OK, value.clone()),
                Err(e) => (e.status, error_body("invalid_request_error", e)),
            };
            state.idempotent.insert(
                key,
                IdempotentAnswer {
                    request,
                    params,
                    status,
                    body,
                },
            );
        }
        drop(state);
        match result {
            Ok(value) => warp::reply::json(&value).into_response(),
            Err(e) => error_reply(
                e.status,
                "invalid_request_error",
                e.code,
                e.param,
                &e.message,
            ),
        }
    }

    /// `GET /checkout/{id}` (the page) and `POST /checkout/{id}/complete` (its button).
    fn checkout_page(&self, method: &Method, rest: &str) -> Response {
        let (id, action) = match rest.split_once('/') {
            Some((id, action)) => (id, Some(action)),
            None => (rest, None),
        };
        let mut state = self.lock();
        let Some(index) = state.session_index(id) else {
            return html_reply(
                StatusCode::NOT_FOUND,
                "<!doctype html><title>Not found</title><p>No such checkout session.</p>"
                    .to_string(),
            );
        };
        match (method.as_str(), action) {
            ("GET", None) => html_reply(StatusCode::OK, checkout_html(&state.sessions[index].json)),
            ("POST", Some("complete")) => {
                if state.sessions[index].json["status"] != "open" {
                    return html_reply(
                        StatusCode::CONFLICT,
                        "<!doctype html><title>Closed</title><p>This checkout session is no longer open.</p>"
                            .to_string(),
                    );
                }
                state.complete(id, PaymentMethodKind::visa_4242());
                let session = &state.sessions[index].json;
                match session["success_url"].as_str() {
                    Some(success) => {
                        let target = success.replace("{CHECKOUT_SESSION_ID}", id);
                        warp::reply::with_header(
                            warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER),
                            header::LOCATION,
                            target,
                        )
                        .into_response()
                    }
                    None => html_reply(StatusCode::OK, checkout_html(session)),
                }
            }
            _ => html_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "<!doctype html><title>Not allowed</title><p>Method not allowed.</p>".to_string(),
            ),
        }
    }
}

/// One API call as it arrived.
struct Call<'a> {
    method: Method,
    path: &'a str,
    query: &'a str,
    auth: Option<&'a str>,
    idempotency_key: Option<String>,
    body: &'a [u8],
}

/// An API error answer (always `invalid_request_error`).
struct ApiError {
    status: StatusCode,
    code: Option<&'static str>,
    param: Option<String>,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> Self {
        Self {
            status,
            code: None,
            param: None,
            message,
        }
    }

    fn missing(what: &str, id: &str, param: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: Some("resource_missing"),
            param: Some(param.to_string()),
            message: format!("No such {what}: '{id}'"),
        }
    }

    fn param(param: &str, message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: Some("parameter_missing"),
            param: Some(param.to_string()),
            message,
        }
    }
}

fn error_body(kind: &str, e: &ApiError) -> Value {
    let mut error = json!({ "type": kind, "message": e.message });
    if let Some(code) = e.code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    if let Some(param) = &e.param {
        error["param"] = json!(param);
    }
    json!({ "error": error })
}

fn error_reply(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<String>,
    message: &str,
) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    warp::reply::with_status(warp::reply::json(&json!({ "error": error })), status).into_response()
}

fn html_reply(status: StatusCode, body: String) -> Response {
    warp::reply::with_status(warp::reply::html(body), status).into_response()
}

// ===== the objects =====

impl State {
    fn next_id(&mut self, prefix: &'static str) -> String {
        let n = self.counters.entry(prefix).or_insert(0);
        *n += 1;
        format!("{prefix}_test_{n}")
    }

    fn customer(&self, id: &str) -> Option<&Value> {
        self.customers.iter().find(|c| c["id"] == id)
    }

    fn session_index(&self, id: &str) -> Option<usize> {
        self.sessions.iter().position(|s| s.json["id"] == id)
    }

    fn session_index_or_panic(&self, id: &str) -> usize {
        self.session_index(id)
            .unwrap_or_else(|| panic!("fake Stripe: no such checkout session {id}"))
    }

    fn pm_index(&self, id: &str) -> Option<usize> {
        self.payment_methods.iter().position(|p| p.json["id"] == id)
    }

    /// Newest first.
    fn attached_to(&self, customer: &str) -> Vec<&Value> {
        self.payment_methods
            .iter()
            .rev()
            .map(|p| &p.json)
            .filter(|pm| pm["customer"] == customer)
            .collect()
    }

    fn create_customer(&mut self, params: &BTreeMap<String, String>) -> Value {
        let id = self.next_id("cus");
        let n = self.counters["cus"];
        let customer = json!({
            "id": id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "created": now(),
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": params.get("description"),
            "discount": null,
            "email": params.get("email"),
            "invoice_prefix": format!("{:08X}", 0x7E57_0000_u64 + n),
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": null,
                "footer": null,
                "rendering_options": null,
            },
            "livemode": false,
            "metadata": sub_map(params, "metadata"),
            "name": params.get("name"),
            "next_invoice_sequence": 1,
            "phone": params.get("phone"),
            "preferred_locales": [],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null,
        });
        self.customers.push(customer.clone());
        customer
    }

    fn create_session(
        &mut self,
        params: &BTreeMap<String, String>,
        addr: SocketAddr,
    ) -> Result<Value, ApiError> {
        let mode = params
            .get("mode")
            .ok_or_else(|| ApiError::param("mode", "Missing required param: mode.".to_string()))?
            .clone();
        if mode != "payment" && mode != "setup" {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: Some("parameter_invalid_string"),
                param: Some("mode".to_string()),
                message: format!(
                    "Invalid mode: must be one of payment or setup (fake Stripe), got '{mode}'."
                ),
            });
        }
        let customer = params.get("customer").cloned();
        if let Some(customer) = &customer
            && self.customer(customer).is_none()
        {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                ..ApiError::missing("customer", customer, "customer")
            });
        }
        if !params.contains_key("success_url") {
            return Err(ApiError::param(
                "success_url",
                "Missing required param: success_url.".to_string(),
            ));
        }

        let mut types = indexed_values(params, "payment_method_types");
        if types.is_empty() {
            types = indexed_values(params, "allowed_payment_method_types");
        }
        if types.is_empty() {
            types.push("card".to_string());
        }
        let allowed = indexed_values(params, "allowed_payment_method_types");

        let id = self.next_id("cs");
        let created = now();
        let mut currency = params.get("currency").cloned();
        let (amount, setup_intent, payment_status, total_details) = if mode == "payment" {
            let items = indices(params, "line_items");
            if items.is_empty() {
                return Err(ApiError::param(
                    "line_items",
                    "You must specify `line_items` in `payment` mode.".to_string(),
                ));
            }
            let mut total = 0i64;
            for i in items {
                let key = |k: &str| format!("line_items[{i}][{k}]");
                let unit: i64 = params
                    .get(&key("price_data][unit_amount"))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        ApiError::param(
                            &key("price_data][unit_amount"),
                            "Missing or invalid unit_amount (fake Stripe needs price_data)."
                                .to_string(),
                        )
                    })?;
                let quantity: i64 = params
                    .get(&key("quantity"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                total += unit * quantity;
                if currency.is_none() {
                    currency = params.get(&key("price_data][currency")).cloned();
                }
            }
            let totals = json!({ "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 });
            (Some(total), Value::Null, "unpaid", totals)
        } else {
            let seti_id = self.next_id("seti");
            self.setup_intents.push(json!({
                "id": seti_id,
                "object": "setup_intent",
                "application": null,
                "automatic_payment_methods": null,
                "cancellation_reason": null,
                "client_secret": format!("{seti_id}_secret_fake"),
                "created": created,
                "customer": customer,
                "description": null,
                "flow_directions": null,
                "last_setup_error": null,
                "latest_attempt": null,
                "livemode": false,
                "mandate": null,
                "metadata": {},
                "next_action": null,
                "on_behalf_of": null,
                "payment_method": null,
                "payment_method_types": types,
                "single_use_mandate": null,
                "status": "requires_payment_method",
                "usage": "off_session",
            }));
            (None, json!(seti_id), "no_payment_required", Value::Null)
        };

        let mut pm_options = Map::new();
        let acss = sub_map(params, "payment_method_options[acss_debit]");
        let acss_mandate = sub_map(
            params,
            "payment_method_options[acss_debit][mandate_options]",
        );
        if !acss.is_empty() || !acss_mandate.is_empty() {
            pm_options.insert(
                "acss_debit".to_string(),
                json!({
                    "currency": acss.get("currency"),
                    "mandate_options": {
                        "custom_mandate_url": acss_mandate.get("custom_mandate_url"),
                        "default_for": indexed_values(params, "payment_method_options[acss_debit][mandate_options][default_for]"),
                        "interval_description": acss_mandate.get("interval_description"),
                        "payment_schedule": acss_mandate.get("payment_schedule"),
                        "transaction_type": acss_mandate.get("transaction_type"),
                    },
                    "verification_method": acss.get("verification_method").cloned().unwrap_or_else(|| json!("automatic")),
                }),
            );
        }

        let url = format!("http://{addr}/checkout/{id}");
        let mut session = json!({
            "id": id,
            "object": "checkout.session",
            "adaptive_pricing": null,
            "after_expiration": null,
            "allow_promotion_codes": null,
            "allowed_payment_method_types": if allowed.is_empty() { Value::Null } else { json!(allowed) },
            "amount_subtotal": amount,
            "amount_total": amount,
            "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
            "billing_address_collection": null,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": null,
            "collected_information": null,
            "consent": null,
            "consent_collection": null,
            "created": created,
            "currency": currency,
            "currency_conversion": null,
            "custom_fields": [],
            "custom_text": {
                "after_submit": null,
                "shipping_address": null,
                "submit": null,
                "terms_of_service_acceptance": null,
            },
            "customer": customer,
            "customer_creation": if customer.is_some() { Value::Null } else { json!("if_required") },
            "customer_details": null,
            "customer_email": params.get("customer_email"),
            "discounts": [],
            "expires_at": created + 24 * 3600,
            "invoice": null,
            "invoice_creation": null,
        });
        // Two halves: one `json!` this size exceeds the default macro recursion limit.
        let rest = json!({
            "livemode": false,
            "locale": params.get("locale"),
            "metadata": sub_map(params, "metadata"),
            "mode": mode,
            "payment_intent": null,
            "payment_link": null,
            "payment_method_collection": "always",
            "payment_method_configuration_details": null,
            "payment_method_options": pm_options,
            "payment_method_types": types,
            "payment_status": payment_status,
            "phone_number_collection": { "enabled": false },
            "recovered_from": null,
            "saved_payment_method_options": null,
            "setup_intent": setup_intent,
            "shipping_address_collection": null,
            "shipping_cost": null,
            "shipping_options": [],
            "status": "open",
            "submit_type": null,
            "subscription": null,
            "success_url": params.get("success_url"),
            "total_details": total_details,
            "ui_mode": "hosted_page",
            "url": url,
            "wallet_options": null,
        });
        if let (Value::Object(first), Value::Object(second)) = (&mut session, rest) {
            first.extend(second);
        }
        self.sessions.push(SessionRecord {
            json: session.clone(),
            payment_intent_metadata: sub_map(params, "payment_intent_data[metadata]"),
            payment_intent_description: params.get("payment_intent_data[description]").cloned(),
        });
        Ok(session)
    }

    fn retrieve_session(
        &self,
        id: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Value, ApiError> {
        let mut session = self
            .session_index(id)
            .map(|i| self.sessions[i].json.clone())
            .ok_or_else(|| ApiError::missing("checkout.session", id, "session"))?;
        if indexed_values(params, "expand")
            .iter()
            .any(|e| e == "payment_intent")
            && let Some(pi) = self
                .payment_intents
                .iter()
                .find(|p| p["id"] == session["payment_intent"])
        {
            session["payment_intent"] = pi.clone();
        }
        Ok(session)
    }

    /// `POST /v1/checkout/sessions/{id}/expire`: only an open session can be expired.
    fn api_expire(&mut self, id: &str) -> Result<Value, ApiError> {
        let index = self
            .session_index(id)
            .ok_or_else(|| ApiError::missing("checkout.session", id, "session"))?;
        let session = &mut self.sessions[index].json;
        if session["status"] != "open" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
                    session["status"].as_str().unwrap_or_default()
                ),
            ));
        }
        session["status"] = json!("expired");
        session["url"] = Value::Null;
        Ok(session.clone())
    }

    fn list_payment_methods(
        &self,
        customer: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Value, ApiError> {
        if self.customer(customer).is_none() {
            return Err(ApiError::missing("customer", customer, "customer"));
        }
        let limit = params
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(10)
            .clamp(1, 100);
        let mut all: Vec<&Value> = self.attached_to(customer);
        if let Some(kind) = params.get("type") {
            all.retain(|pm| pm["type"] == kind.as_str());
        }
        if let Some(after) = params.get("starting_after") {
            match all.iter().position(|pm| pm["id"] == after.as_str()) {
                Some(pos) => {
                    all.drain(..=pos);
                }
                None => return Err(ApiError::missing("payment_method", after, "starting_after")),
            }
        }
        let has_more = all.len() > limit;
        all.truncate(limit);
        Ok(json!({
            "object": "list",
            "data": all,
            "has_more": has_more,
            "url": format!("/v1/customers/{customer}/payment_methods"),
        }))
    }

    fn api_detach(&mut self, id: &str) -> Result<Value, ApiError> {
        match self.pm_index(id) {
            Some(index) if self.payment_methods[index].json["customer"].is_string() => {
                self.detach(index);
                Ok(self.payment_methods[index].json.clone())
            }
            Some(_) => Err(ApiError {
                message: format!(
                    "No such PaymentMethod: '{id}'; it is not attached to a customer (fake Stripe)."
                ),
                ..ApiError::missing("payment_method", id, "payment_method")
            }),
            None => Err(ApiError {
                message: format!("No such PaymentMethod: '{id}'"),
                ..ApiError::missing("payment_method", id, "payment_method")
            }),
        }
    }

    fn detach(&mut self, index: usize) {
        let record = &mut self.payment_methods[index];
        let customer = std::mem::replace(&mut record.json["customer"], Value::Null);
        record.detached_from = customer.as_str().map(str::to_string);
    }

    fn create_payment_method(
        &mut self,
        customer: Option<&str>,
        kind: &PaymentMethodKind,
    ) -> String {
        let id = self.next_id("pm");
        let (name, email) = customer
            .and_then(|c| self.customer(c))
            .map(|c| (c["name"].clone(), c["email"].clone()))
            .unwrap_or((Value::Null, Value::Null));
        let mut pm = json!({
            "id": id,
            "object": "payment_method",
            "allow_redisplay": "always",
            "billing_details": {
                "address": {
                    "city": null,
                    "country": null,
                    "line1": null,
                    "line2": null,
                    "postal_code": null,
                    "state": null,
                },
                "email": email,
                "name": name,
                "phone": null,
                "tax_id": null,
            },
            "created": now(),
            "customer": customer,
            "livemode": false,
            "metadata": {},
            "type": kind.type_name(),
        });
        match kind {
            PaymentMethodKind::Card {
                brand,
                last4,
                exp_month,
                exp_year,
            } => {
                pm["card"] = json!({
                    "brand": brand,
                    "checks": {
                        "address_line1_check": null,
                        "address_postal_code_check": null,
                        "cvc_check": "pass",
                    },
                    "country": "US",
                    "display_brand": brand,
                    "exp_month": exp_month,
                    "exp_year": exp_year,
                    "fingerprint": format!("fakeFp{brand}{last4}"),
                    "funding": "credit",
                    "generated_from": null,
                    "last4": last4,
                    "networks": { "available": [brand], "preferred": null },
                    "regulated_status": "unregulated",
                    "three_d_secure_usage": { "supported": true },
                    "wallet": null,
                });
            }
            PaymentMethodKind::AcssDebit { bank_name, last4 } => {
                pm["acss_debit"] = json!({
                    "bank_name": bank_name,
                    "fingerprint": format!("fakeFpAcss{last4}"),
                    "institution_number": "000",
                    "last4": last4,
                    "transit_number": "11000",
                });
            }
        }
        self.payment_methods.push(PaymentMethodRecord {
            json: pm,
            detached_from: None,
        });
        id
    }

    /// The session's PaymentIntent id, created if it has none yet: `succeeded` when paid by
    /// card, `processing` (nothing received yet) when paid by pre-authorized debit.
    fn ensure_payment_intent(&mut self, index: usize, kind: &PaymentMethodKind) -> String {
        if let Some(id) = self.sessions[index].json["payment_intent"].as_str() {
            return id.to_string();
        }
        let pending = matches!(kind, PaymentMethodKind::AcssDebit { .. });
        let pm_id = self.create_payment_method(None, kind);
        let pi_id = self.next_id("pi");
        let charge_id = self.next_id("ch");
        let record = &self.sessions[index];
        let session = &record.json;
        let amount = session["amount_total"].as_i64().unwrap_or(0);
        let pi = json!({
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": if pending { 0 } else { amount },
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": null,
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic_async",
            "client_secret": format!("{pi_id}_secret_fake"),
            "confirmation_method": "automatic",
            "created": now(),
            "currency": session["currency"],
            "customer": session["customer"],
            "description": record.payment_intent_description,
            "last_payment_error": null,
            "latest_charge": charge_id,
            "livemode": false,
            "metadata": record.payment_intent_metadata,
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": pm_id,
            "payment_method_types": session["payment_method_types"],
            "processing": null,
            "receipt_email": null,
            "review": null,
            "setup_future_usage": null,
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": if pending { "processing" } else { "succeeded" },
            "transfer_data": null,
            "transfer_group": null,
        });
        self.payment_intents.push(pi);
        self.sessions[index].json["payment_intent"] = json!(pi_id);
        pi_id
    }

    /// Completes a session (see `FakeStripe::complete_checkout`); returns the event.
    fn complete(&mut self, session_id: &str, kind: PaymentMethodKind) -> Value {
        let index = self.session_index_or_panic(session_id);
        let status = self.sessions[index].json["status"].clone();
        assert_ne!(
            status, "expired",
            "fake Stripe: cannot complete checkout session {session_id}: it expired"
        );
        if status == "open" {
            let customer = self.sessions[index].json["customer"]
                .as_str()
                .map(str::to_string);
            if self.sessions[index].json["mode"] == "payment" {
                let pi_id = self.ensure_payment_intent(index, &kind);
                let settled = self
                    .payment_intents
                    .iter()
                    .any(|p| p["id"] == pi_id.as_str() && p["status"] == "succeeded");
                self.sessions[index].json["payment_status"] =
                    json!(if settled { "paid" } else { "unpaid" });
            } else {
                let pm_id = self.create_payment_method(customer.as_deref(), &kind);
                let seti = self.sessions[index].json["setup_intent"].clone();
                if let Some(si) = self.setup_intents.iter_mut().find(|s| s["id"] == seti) {
                    si["payment_method"] = json!(pm_id);
                    si["status"] = json!("succeeded");
                }
            }
            let details = customer
                .as_deref()
                .and_then(|c| self.customer(c))
                .map(|c| {
                    json!({
                        "address": null,
                        "email": c["email"],
                        "name": c["name"],
                        "phone": null,
                        "tax_exempt": "none",
                        "tax_ids": [],
                    })
                })
                .unwrap_or(Value::Null);
            let session = &mut self.sessions[index].json;
            session["status"] = json!("complete");
            session["url"] = Value::Null;
            session["customer_details"] = details;
        }
        let object = self.sessions[index].json.clone();
        self.event("checkout.session.completed", object, None)
    }

    /// Settles the pending payment of a completed payment session: succeeded (received,
    /// session paid) or failed (back to `requires_payment_method`). Returns the session's index.
    fn settle(&mut self, session_id: &str, succeeded: bool) -> usize {
        let index = self.session_index_or_panic(session_id);
        let pi_id = self.sessions[index].json["payment_intent"].clone();
        let pi = self
            .payment_intents
            .iter_mut()
            .find(|p| p["id"] == pi_id)
            .unwrap_or_else(|| {
                panic!("fake Stripe: session {session_id} has no PaymentIntent (complete it first)")
            });
        if succeeded {
            pi["status"] = json!("succeeded");
            pi["amount_received"] = pi["amount"].clone();
            pi["last_payment_error"] = Value::Null;
            self.sessions[index].json["payment_status"] = json!("paid");
        } else {
            pi["status"] = json!("requires_payment_method");
            pi["amount_received"] = json!(0);
            pi["last_payment_error"] = json!({
                "type": "invalid_request_error",
                "code": "payment_method_not_available",
                "message": "The customer's bank account could not be debited (fake Stripe).",
            });
        }
        index
    }

    fn event(&mut self, kind: &str, object: Value, previous_attributes: Option<Value>) -> Value {
        let id = self.next_id("evt");
        let mut data = json!({ "object": object });
        if let Some(previous) = previous_attributes {
            data["previous_attributes"] = previous;
        }
        let event = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": now(),
            "data": data,
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind,
        });
        self.events.push(event.clone());
        event
    }
}

// ===== helpers =====

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn decode_form(bytes: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `prefix[key]=value` pairs (one level, `key` without brackets) as a JSON object.
fn sub_map(params: &BTreeMap<String, String>, prefix: &str) -> Map<String, Value> {
    params
        .iter()
        .filter_map(|(k, v)| {
            let key = k
                .strip_prefix(prefix)?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            (!key.contains('[') && !key.contains(']')).then(|| (key.to_string(), json!(v)))
        })
        .collect()
}

/// The indices `i` of the `prefix[i]...` keys, in numeric order.
fn indices(params: &BTreeMap<String, String>, prefix: &str) -> Vec<usize> {
    params
        .keys()
        .filter_map(|k| {
            let rest = k.strip_prefix(prefix)?.strip_prefix('[')?;
            rest.split_once(']')?.0.parse().ok()
        })
        .collect::<BTreeSet<usize>>()
        .into_iter()
        .collect()
}

/// The values of `prefix[i]` (flat arrays), in index order.
fn indexed_values(params: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    indices(params, prefix)
        .into_iter()
        .filter_map(|i| params.get(&format!("{prefix}[{i}]")).cloned())
        .collect()
}

fn redact_key(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let head: String = key.chars().take(8).collect();
    format!("{head}****{tail}")
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn checkout_html(session: &Value) -> String {
    let text = |v: &Value| escape_html(v.as_str().unwrap_or(""));
    let id = text(&session["id"]);
    let amount = match (
        session["amount_total"].as_i64(),
        session["currency"].as_str(),
    ) {
        (Some(cents), Some(currency)) => format!(
            "{}.{:02} {}",
            cents / 100,
            cents % 100,
            escape_html(&currency.to_uppercase())
        ),
        _ => "—".to_string(),
    };
    let status = text(&session["status"]);
    let action = if session["status"] == "open" {
        let label = if session["mode"] == "setup" {
            "Save payment method"
        } else {
            "Pay"
        };
        format!(
            "<form method=\"post\" action=\"/checkout/{id}/complete\"><button type=\"submit\">{label}</button></form>"
        )
    } else {
        "<p>This checkout session is no longer open.</p>".to_string()
    };
    let cancel = match session["cancel_url"].as_str() {
        Some(url) => format!(
            "<p><a id=\"cancel\" href=\"{}\">Cancel</a></p>",
            escape_html(url)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Fake Stripe Checkout</title></head>\n\
         <body><h1>Fake Stripe Checkout</h1>\n\
         <dl><dt>Session</dt><dd id=\"session\">{id}</dd>\
         <dt>Mode</dt><dd id=\"mode\">{mode}</dd>\
         <dt>Amount</dt><dd id=\"amount\">{amount}</dd>\
         <dt>Status</dt><dd id=\"status\">{status}</dd></dl>\n{action}\n{cancel}\n</body></html>\n",
        mode = text(&session["mode"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_helpers_decode_bracketed_keys() {
        let params = decode_form(
            b"line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=12900&line_items[1][quantity]=2\
              &metadata[invoice_id]=inv+1&payment_method_types[1]=acss_debit&payment_method_types[0]=card",
        );
        assert_eq!(params["line_items[0][price_data][unit_amount]"], "12900");
        assert_eq!(indices(&params, "line_items"), vec![0, 1]);
        assert_eq!(sub_map(&params, "metadata")["invoice_id"], "inv 1");
        assert_eq!(
            indexed_values(&params, "payment_method_types"),
            vec!["card", "acss_debit"]
        );
    }

    #[test]
    fn redacts_keys() {
        assert_eq!(redact_key("sk_test_wrong_key_1234"), "sk_test_****1234");
    }
}
