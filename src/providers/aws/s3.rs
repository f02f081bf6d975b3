//! One S3 bucket as an [`ObjectStore`](super::crate::providers::ObjectStore): shared
//! state, written only with conditions; S3's clock from its answers.

use super::*;

/// One S3 bucket, where shared state lives.
pub struct S3Objects {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) kms_key_id: Option<String>,
    pub(super) clock: ServerClock,
}

impl S3Objects {
    fn resource(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The bucket is missing: said plainly, not as a missing object.
    fn no_bucket<E: ProvideErrorMetadata>(
        &self,
        action: &str,
        error: &SdkError<E, HttpResponse>,
    ) -> Option<ProviderError> {
        (error.code() == Some("NoSuchBucket")).then(|| ProviderError {
            action: action.to_string(),
            resource: Some(format!("s3://{}", self.bucket)),
            kind: ErrorKind::Other(
                "the bucket does not exist (or is not in this region); create it, with versioning on, or fix `state.s3.bucket` or --state".into(),
            ),
        })
    }

    /// A failed conditional request (412, or 409 when two race).
    fn condition_failed<E>(error: &SdkError<E, HttpResponse>) -> bool {
        error
            .raw_response()
            .is_some_and(|raw| matches!(raw.status().as_u16(), 409 | 412))
    }
}

impl crate::providers::ObjectStore for S3Objects {
    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<Option<crate::providers::StoredObject>, ProviderError>,
    > {
        Box::pin(async move {
            let answer = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(answer) => answer,
                Err(error) if let Some(missing) = self.no_bucket("s3:GetObject", &error) => {
                    return Err(missing);
                }
                Err(error) => {
                    return absent(error, "s3:GetObject", Some(&self.resource(key))).map(|()| None);
                }
            };
            let etag = answer.e_tag().unwrap_or_default().to_string();
            let last_modified = answer
                .last_modified()
                .map(to_time)
                .ok_or_else(|| missing("s3:GetObject", "LastModified"))?;
            let body = answer
                .body
                .collect()
                .await
                .map_err(|error| ProviderError {
                    action: "s3:GetObject".into(),
                    resource: Some(self.resource(key)),
                    kind: ErrorKind::Unreachable(error.to_string()),
                })?
                .into_bytes()
                .to_vec();
            Ok(Some(crate::providers::StoredObject {
                body,
                etag,
                last_modified,
                now: self.clock.now().unwrap_or_else(OffsetDateTime::now_utc),
            }))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        condition: Option<crate::providers::Condition>,
    ) -> futures_util::future::BoxFuture<'a, Result<crate::providers::Conditional, ProviderError>>
    {
        use aws_sdk_s3::types::ServerSideEncryption;
        Box::pin(async move {
            let mut request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(body.into());
            request = match &self.kms_key_id {
                Some(kms) => request
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms),
                None => request.server_side_encryption(ServerSideEncryption::Aes256),
            };
            request = match condition {
                Some(crate::providers::Condition::Absent) => request.if_none_match("*"),
                Some(crate::providers::Condition::Is(etag)) => request.if_match(etag),
                None => request,
            };
            match request.send().await {
                Ok(answer) => Ok(crate::providers::Conditional::Yes(
                    answer.e_tag().unwrap_or_default().to_string(),
                )),
                Err(error) if Self::condition_failed(&error) => {
                    Ok(crate::providers::Conditional::ConditionFailed)
                }
                Err(error) if let Some(missing) = self.no_bucket("s3:PutObject", &error) => {
                    Err(missing)
                }
                Err(error) => Err(provider_error(
                    "s3:PutObject",
                    Some(&self.resource(key)),
                    error,
                )),
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            loop {
                match pages.next().await {
                    None => break,
                    Some(Ok(page)) => keys.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key().map(str::to_string)),
                    ),
                    Some(Err(error)) => {
                        if let Some(missing) = self.no_bucket("s3:ListObjectsV2", &error) {
                            return Err(missing);
                        }
                        return Err(provider_error(
                            "s3:ListObjectsV2",
                            Some(&self.resource(prefix)),
                            error,
                        ));
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        etag: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<crate::providers::Conditional, ProviderError>>
    {
        Box::pin(async move {
            let mut request = self.client.delete_object().bucket(&self.bucket).key(key);
            if let Some(etag) = etag {
                request = request.if_match(etag);
            }
            match request.send().await {
                Ok(_) => Ok(crate::providers::Conditional::Yes(String::new())),
                Err(error) if Self::condition_failed(&error) => {
                    Ok(crate::providers::Conditional::ConditionFailed)
                }
                Err(error)
                    if error
                        .raw_response()
                        .is_some_and(|raw| raw.status().as_u16() == 404) =>
                {
                    Ok(crate::providers::Conditional::Yes(String::new()))
                }
                Err(error) => Err(provider_error(
                    "s3:DeleteObject",
                    Some(&self.resource(key)),
                    error,
                )),
            }
        })
    }
}
