//! What rekey adds to every SDK client: the server's clock from its
//! `Date` header, and the call count per service.

use super::*;

/// IAM's clock, from the `Date` header of its answers: `create` judges by
/// it whether an unknown key appeared while its own call was under way, so
/// a skewed clock here can neither spare an orphan nor condemn someone
/// else's key. The latest answer's, one-second resolution.
#[derive(Debug, Clone, Default)]
pub struct ServerClock(std::sync::Arc<std::sync::Mutex<Option<OffsetDateTime>>>);

impl ServerClock {
    pub fn now(&self) -> Option<OffsetDateTime> {
        *self.0.lock().expect("server clock")
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for ServerClock {
    fn name(&self) -> &'static str {
        "rekey-server-clock"
    }

    fn read_after_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(date) = context.response().headers().get("date").and_then(http_date) {
            *self.0.lock().expect("server clock") = Some(date);
        }
        Ok(())
    }
}

/// An HTTP `Date` header: `Mon, 30 Nov 2026 05:54:53 GMT`.
pub(super) fn http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Counts the calls a client makes: one per operation (each page of a
/// listing is one; the SDK's retries of it are not).
#[derive(Debug, Clone)]
pub(super) struct Counted(pub(super) Arc<AtomicU64>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for Counted {
    fn name(&self) -> &'static str {
        "rekey-call-count"
    }

    fn read_before_execution(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
