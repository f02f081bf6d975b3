//! SSM Run Command, for `ssm_command` hooks.

use super::*;

impl RunCommand for Aws {
    async fn operator_credentials(
        &self,
    ) -> Result<Option<crate::providers::OperatorCredentials>, ProviderError> {
        let Some(role) = &self.assumed else {
            return Ok(None);
        };
        let credentials = role.credentials().await?;
        Ok(Some(crate::providers::OperatorCredentials {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: SecretString::from(credentials.secret_access_key().to_string()),
            session_token: SecretString::from(
                credentials.session_token().unwrap_or_default().to_string(),
            ),
        }))
    }

    async fn send_shell_command(
        &self,
        commands: &[String],
        instance_ids: &[String],
        tags: &BTreeMap<String, String>,
        timeout_seconds: i32,
    ) -> Result<(String, Vec<String>), ProviderError> {
        let targets: Vec<aws_sdk_ssm::types::Target> = tags
            .iter()
            .map(|(key, value)| {
                aws_sdk_ssm::types::Target::builder()
                    .key(format!("tag:{key}"))
                    .values(value)
                    .build()
            })
            .collect();
        let answer = self
            .ssm
            .send_command()
            .document_name("AWS-RunShellScript")
            .set_instance_ids((!instance_ids.is_empty()).then(|| instance_ids.to_vec()))
            .set_targets((!targets.is_empty()).then_some(targets))
            .parameters("commands", commands.to_vec())
            .timeout_seconds(timeout_seconds)
            .send()
            .await
            .map_err(|e| provider_error("ssm:SendCommand", None, e))?;
        let command = answer
            .command()
            .ok_or_else(|| missing("ssm:SendCommand", "command"))?;
        let id = command
            .command_id()
            .ok_or_else(|| missing("ssm:SendCommand", "command id"))?;
        Ok((id.to_string(), command.instance_ids().to_vec()))
    }

    async fn command_instances(&self, command_id: &str) -> Result<Vec<String>, ProviderError> {
        let mut pages = self
            .ssm
            .list_command_invocations()
            .command_id(command_id)
            .into_paginator()
            .send();
        let mut instances = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| provider_error("ssm:ListCommandInvocations", Some(command_id), e))?;
            instances.extend(
                page.command_invocations()
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_string)),
            );
        }
        Ok(instances)
    }

    async fn invocation(
        &self,
        command_id: &str,
        instance: &str,
    ) -> Result<Option<Invocation>, ProviderError> {
        match self
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance)
            .send()
            .await
        {
            Ok(answer) => {
                let mut output = answer
                    .standard_output_content()
                    .unwrap_or_default()
                    .to_string();
                output.push_str(answer.standard_error_content().unwrap_or_default());
                Ok(Some(Invocation {
                    instance: instance.to_string(),
                    status: answer
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "Pending".into()),
                    response_code: Some(answer.response_code()),
                    output,
                }))
            }
            Err(error) => absent(error, "ssm:GetCommandInvocation", Some(instance)).map(|()| None),
        }
    }
}
