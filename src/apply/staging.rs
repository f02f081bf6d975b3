//! Staging: where a new secret is written right after CreateAccessKey,
//! before anything else, so that a crash never loses it. Distribution reads
//! it from there; `unstage` deletes it at the end.
//!
//! Either an SSM SecureString (`staging.ssm_parameter`) or a 0600 file under
//! the state directory's `staging/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::providers::{NewKey, ParameterSpec, ParameterStore, ProviderError};

/// Why staging failed: the secret could not be kept, read or deleted.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("cannot stage the new key in {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the staged key in {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot delete the staged key {}: {source}", path.display())]
    Delete {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}
use crate::secret::{ExposeSecret, SecretString, format_value, parse_staged};
use crate::workflow::vocabulary::SecretFormat;

/// Where one user's new key is staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    File(PathBuf),
    Ssm(ParameterSpec),
}

impl Stage {
    pub fn file(state_dir: &std::path::Path, user: &str) -> Self {
        Stage::File(state_dir.join("staging").join(format!("{user}.json")))
    }

    pub fn ssm(name: String, kms_key_id: Option<String>) -> Self {
        Stage::Ssm(ParameterSpec {
            name,
            secure: true,
            kms_key_id,
            tags: BTreeMap::new(),
        })
    }

    /// Where, for messages.
    pub fn describe(&self) -> String {
        match self {
            Stage::File(path) => format!("file {}", path.display()),
            Stage::Ssm(spec) => format!("SSM parameter {}", spec.name),
        }
    }

    pub async fn write<P: ParameterStore>(
        &self,
        provider: &P,
        key: &NewKey,
    ) -> Result<(), StagingError> {
        let value = format_value(SecretFormat::Json, &key.id, &key.secret, None);
        match self {
            Stage::File(path) => crate::providers::files::write_atomically(
                path,
                value.expose_secret().as_bytes(),
                0o600,
            )
            .map_err(|source| StagingError::Write {
                path: path.clone(),
                source,
            }),
            Stage::Ssm(spec) => {
                provider.put_parameter(spec, &value).await?;
                Ok(())
            }
        }
    }

    /// The staged key id and secret, if any.
    pub async fn read<P: ParameterStore>(
        &self,
        provider: &P,
    ) -> Result<Option<(String, SecretString)>, StagingError> {
        let value = match self {
            Stage::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(SecretString::from(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(StagingError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            },
            Stage::Ssm(spec) => provider.parameter_value(&spec.name, None).await?,
        };
        Ok(value.as_ref().and_then(parse_staged))
    }

    pub async fn clear<P: ParameterStore>(&self, provider: &P) -> Result<(), StagingError> {
        match self {
            Stage::File(path) => {
                let removed = match std::fs::remove_file(path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                };
                removed
                    .and_then(|()| crate::providers::files::remove_stale_temporaries(path))
                    .map_err(|source| StagingError::Delete {
                        path: path.clone(),
                        source,
                    })
            }
            Stage::Ssm(spec) => Ok(provider.delete_parameter(&spec.name).await?),
        }
    }
}
