//! Claims in the state's bucket, at `rekey-claims/<account>/<user>.json`,
//! written with `If-None-Match: *` and released with `If-Match`: shared by
//! every workflow and runner whose state is in that bucket.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{Claim, ClaimError, ClaimStore};
use crate::providers::{Condition, Conditional, ObjectStore, ProviderError};

/// Claims in the bucket.
pub struct S3Claims {
    store: Arc<dyn ObjectStore>,
    /// The ETags of the claims this runner wrote, by key: a release
    /// deletes its own claim with `If-Match` without reading it first.
    mine: Mutex<BTreeMap<String, (String, String)>>,
}

impl S3Claims {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        S3Claims {
            store,
            mine: Mutex::new(BTreeMap::new()),
        }
    }

    fn remember(&self, key: &str, rotation: &str, etag: String) {
        self.mine
            .lock()
            .expect("claims")
            .insert(key.to_string(), (rotation.to_string(), etag));
    }

    fn key(account: &str, user: &str) -> String {
        format!("rekey-claims/{account}/{user}.json")
    }

    async fn read(
        &self,
        account: &str,
        user: &str,
    ) -> Result<Option<(Claim, String)>, ProviderError> {
        let key = Self::key(account, user);
        Ok(self.store.get(&key).await?.map(|o| {
            // A claim rekey did not write still holds the user: someone
            // must look at it (`apply --force` removes it).
            let claim = serde_json::from_slice(&o.body).unwrap_or_else(|_| Claim {
                workflow: format!("(unknown: {key} is not a claim rekey wrote)"),
                rotation: "(unknown)".into(),
                state: "(unknown)".into(),
                host: "(unknown)".into(),
                pid: 0,
                since: "(unknown)".into(),
            });
            (claim, o.etag)
        }))
    }
}

impl ClaimStore for S3Claims {
    fn holder<'a>(&'a self, account: &'a str, user: &'a str) -> BoxFuture<'a, Option<Claim>> {
        Box::pin(async move {
            self.read(account, user)
                .await
                .ok()
                .flatten()
                .map(|(c, _)| c)
        })
    }

    fn take<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        claim: &'a Claim,
        force: bool,
    ) -> BoxFuture<'a, Result<(), ClaimError>> {
        Box::pin(async move {
            let key = Self::key(account, user);
            let body = serde_json::to_vec(claim).expect("plain data");
            for _ in 0..8 {
                let failure = match self
                    .store
                    .put(&key, body.clone(), Some(Condition::Absent))
                    .await
                {
                    Ok(Conditional::Yes(etag)) => {
                        self.remember(&key, &claim.rotation, etag);
                        return Ok(());
                    }
                    Ok(Conditional::ConditionFailed) => None,
                    Err(error) => Some(error),
                };
                match self.read(account, user).await? {
                    // Ours, perhaps by an earlier try whose answer was lost.
                    Some((holder, etag)) if holder.rotation == claim.rotation => {
                        self.remember(&key, &claim.rotation, etag);
                        return Ok(());
                    }
                    _ if failure.is_some() => return Err(failure.expect("an error").into()),
                    Some((holder, _)) if !force => return Err(ClaimError::Held(Box::new(holder))),
                    Some((_, etag)) => {
                        self.store.delete(&key, Some(&etag)).await?;
                    }
                    None => {}
                }
            }
            Err(ClaimError::Store(ProviderError {
                action: "s3:PutObject".into(),
                resource: Some(key),
                kind: crate::providers::ErrorKind::Other(
                    "the claim keeps changing; try again".into(),
                ),
            }))
        })
    }

    fn claimed<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Option<std::collections::BTreeSet<String>>> {
        Box::pin(async move {
            let prefix = format!("rekey-claims/{account}/");
            let keys = self.store.list(&prefix).await.ok()?;
            Some(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".json"))
                    .map(str::to_string)
                    .collect(),
            )
        })
    }

    fn release<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        rotation: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let key = Self::key(account, user);
            let known = self.mine.lock().expect("claims").remove(&key);
            let etag = match known {
                Some((mine, etag)) if mine == rotation => Some(etag),
                _ => match self.read(account, user).await {
                    Ok(Some((holder, etag))) if holder.rotation == rotation => Some(etag),
                    _ => None,
                },
            };
            if let Some(etag) = etag {
                // If-Match: only while it is still this rotation's. Tried
                // again after a failure: a claim left behind would hold the
                // user from other workflows until this one runs again.
                for wait in [0, 1, 2, 4] {
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                    if self.store.delete(&key, Some(&etag)).await.is_ok() {
                        break;
                    }
                }
            }
        })
    }
}
