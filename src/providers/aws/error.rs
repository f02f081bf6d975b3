//! SDK errors turned into [`ProviderError`]s that say what to do.

use super::*;

/// Turns an SDK error into advice: which action, on what, and what to do.
pub(super) fn provider_error<E>(
    action: &str,
    resource: Option<&str>,
    error: SdkError<E, HttpResponse>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&error).to_string();
    let kind = match &error {
        SdkError::TimeoutError(_) => ErrorKind::Timeout(action.to_string()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            ErrorKind::Timeout(action.to_string())
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
            if detail.contains("credential") =>
        {
            ErrorKind::NoCredentials
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            ErrorKind::Unreachable(first_line(&detail))
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            classify(error.code(), error.message(), status)
        }
        SdkError::ResponseError(response) => classify(None, None, response.raw().status().as_u16()),
        _ => ErrorKind::Other(first_line(&detail)),
    };
    ProviderError {
        action: action.to_string(),
        resource: resource.map(str::to_string),
        kind,
    }
}

pub(super) fn classify(code: Option<&str>, message: Option<&str>, status: u16) -> ErrorKind {
    let described = || match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        (None, Some(message)) => message.to_string(),
        (None, None) => format!("HTTP {status}"),
    };
    match code {
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException",
        ) => ErrorKind::AccessDenied(described()),
        Some(
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException",
        ) => ErrorKind::AccessDenied(format!("{}; the credentials were rejected", described())),
        Some(
            "NoSuchEntity"
            | "ParameterNotFound"
            | "ParameterVersionNotFound"
            | "ResourceNotFoundException"
            | "InvocationDoesNotExist",
        ) => ErrorKind::NotFound,
        Some(
            "Throttling"
            | "ThrottlingException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded",
        ) => ErrorKind::Throttled,
        // Error bodies are not always parsed (moto with authentication on):
        // the status still says what happened.
        _ => match status {
            403 => ErrorKind::AccessDenied(described()),
            404 => ErrorKind::NotFound,
            429 => ErrorKind::Throttled,
            _ => ErrorKind::Other(described()),
        },
    }
}

pub(super) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

pub(super) fn to_time(date: &aws_smithy_types::DateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(date.secs()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn missing(action: &str, what: &str) -> ProviderError {
    ProviderError {
        action: action.to_string(),
        resource: None,
        kind: ErrorKind::Other(format!("the answer has no {what}")),
    }
}

/// For the calls whose "not found" is an answer (the thing is already
/// gone, or was never there): `Ok(())` then, and the error as advice
/// otherwise.
pub(super) fn absent<E>(
    error: SdkError<E, HttpResponse>,
    action: &str,
    resource: Option<&str>,
) -> Result<(), ProviderError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let error = provider_error(action, resource, error);
    match error.kind {
        ErrorKind::NotFound => Ok(()),
        _ => Err(error),
    }
}
