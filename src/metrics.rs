//! Prometheus metrics for operations: requests, sends by status, send latency, queue depth,
//! retries.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabel, Histogram>,
    pub sends: Family<StatusLabel, Counter>,
    pub send_seconds: Histogram,
    pub retries: Counter,
    pub sign_in_requests: Family<OutcomeLabel, Counter>,
    pub relayed: Counter,
    pub queue_depth: Gauge,
    pub pending_deliveries: Gauge,
    pub http_open_connections: Gauge,
    pub http_requests_in_flight: Gauge,
    /// HMACs computed to check Stripe webhook signatures (at most one per request).
    pub webhook_hmacs: Counter,
    /// Messages the bounce listener handed on, by outcome (bounced, delayed, complained,
    /// repeated, unknown_delivery, ignored).
    pub bounce_reports: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("latchkey");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            request_seconds.clone(),
        );
        let sends = Family::<StatusLabel, Counter>::default();
        registry.register(
            "mail_sends",
            "Delivery outcomes by status (sent, deferred, failed, suppressed)",
            sends.clone(),
        );
        let send_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "mail_send_duration_seconds",
            "Time to hand one email to the transport",
            send_seconds.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "mail_retries",
            "Deliveries scheduled for another attempt",
            retries.clone(),
        );
        let sign_in_requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "sign_in_requests",
            "Sign-in link requests by outcome",
            sign_in_requests.clone(),
        );
        let relayed = Counter::default();
        registry.register(
            "mail_relayed",
            "Deliveries republished by the relay",
            relayed.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "mail_queue_depth",
            "Messages waiting in the broker's mail queue",
            queue_depth.clone(),
        );
        let pending_deliveries = Gauge::default();
        registry.register(
            "mail_pending_deliveries",
            "Deliveries not yet sent or failed (queued, sending, deferred)",
            pending_deliveries.clone(),
        );
        let http_open_connections = Gauge::default();
        registry.register(
            "http_open_connections",
            "Connections open on the public port (capped by max_connections)",
            http_open_connections.clone(),
        );
        let http_requests_in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests received on the public port and not yet answered",
            http_requests_in_flight.clone(),
        );
        let webhook_hmacs = Counter::default();
        registry.register(
            "stripe_webhook_hmacs",
            "HMACs computed to check Stripe webhook signatures (one per request that passed the cheap checks)",
            webhook_hmacs.clone(),
        );
        let bounce_reports = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "bounce_reports",
            "Messages received by the bounce listener, by outcome (bounced, delayed, complained, repeated, unknown_delivery, ignored)",
            bounce_reports.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            sends,
            send_seconds,
            retries,
            sign_in_requests,
            relayed,
            queue_depth,
            pending_deliveries,
            http_open_connections,
            http_requests_in_flight,
            webhook_hmacs,
            bounce_reports,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding to a String");
        out
    }
}
