//! The stack: created or updated from the uploaded template, waited for, and on failure the
//! first resource that failed and why (CloudFormation's own reason).

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::{Capability, Parameter, Stack};
use aws_sdk_cloudformation::Client;

use crate::aws::Failure;
use crate::error::{Error, Result};

/// How long a create or update may take before deploy stops waiting (the stack goes on).
const MAX_WAIT: Duration = Duration::from_secs(60 * 60);
/// Between two looks at the stack.
const POLL: Duration = Duration::from_secs(3);

/// The stack as found before the deploy.
pub(super) struct Found {
    name: String,
    status: String,
    parameter_keys: Vec<String>,
}

impl Found {
    /// Refuses a stack no create or update can start from.
    pub(super) fn check_deployable(&self) -> Result<()> {
        let refuse = |message: String| {
            Err(Error::Deploy {
                stack: self.name.clone(),
                message,
            })
        };
        match self.status.as_str() {
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" => refuse(format!(
                "is {} after a failed create: delete it (aws cloudformation delete-stack --stack-name {}) and deploy again",
                self.status, self.name
            )),
            status if status.ends_with("_IN_PROGRESS") => refuse(format!(
                "is {status}: another create, update or delete is running; wait for it, then deploy again"
            )),
            "DELETE_FAILED" | "UPDATE_ROLLBACK_FAILED" => refuse(format!(
                "is {}: fix it in the CloudFormation console (continue the rollback or delete it), then deploy again",
                self.status
            )),
            _ => Ok(()),
        }
    }
}

/// The stack after the deploy: a line saying what happened, and its outputs.
pub(super) struct Deployed {
    /// What happened.
    pub(super) line: String,
    outputs: Vec<(String, String)>,
}

impl Deployed {
    /// The output `key`'s value.
    pub(super) fn output(&self, key: &str) -> Option<String> {
        self.outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// The outputs, then the commands that start and watch an export.
    pub(super) fn outputs_lines(&self, region: &str) -> Vec<String> {
        let mut lines = vec!["outputs:".to_string()];
        lines.extend(self.outputs.iter().map(|(k, v)| format!("  {k}: {v}")));
        let output = |key: &str| self.output(key).unwrap_or_default();
        lines.push(format!(
            "start an export: aws stepfunctions start-execution --region {region} --state-machine-arn {} --input '{{\"job_id\": \"first-export\"}}'",
            output("StateMachineArn")
        ));
        lines.push(format!(
            "watch it: sechub-export status --region {region} --destination {} --job-id first-export",
            output("Destination")
        ));
        lines
    }
}

/// What a dry run says of the stack.
pub(super) fn plan_line(
    name: &str,
    found: Option<&Found>,
    parameters: &[(String, String)],
) -> String {
    let given = if parameters.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(" with {}", list.join(", "))
    };
    match found {
        None => format!("would create stack {name}{given}"),
        Some(found) => format!(
            "would update stack {name} ({}){given}; other parameters keep their values",
            found.status
        ),
    }
}

/// The stack's client and name.
pub(super) struct Stacks {
    client: Client,
    /// The stack's name.
    pub(super) name: String,
}

impl Stacks {
    /// The stack `name` in the config's Region.
    pub(super) fn new(config: &SdkConfig, name: &str) -> Stacks {
        Stacks {
            client: Client::new(config),
            name: name.to_string(),
        }
    }

    fn failed(&self, what: &str, failure: &Failure) -> Error {
        if failure.is_access_denied() {
            return Error::auth(
                format!(
                    "{what} stack {} was refused ({}): deploying needs CloudFormation, IAM, S3, Lambda, Step Functions and the rest of the template's services",
                    self.name,
                    failure.summary()
                ),
                None,
            );
        }
        Error::Deploy {
            stack: self.name.clone(),
            message: format!("{what} failed: {}", failure.summary()),
        }
    }

    /// The stack, or `None` when there is none by that name.
    pub(super) async fn describe(&self) -> Result<Option<Found>> {
        let stack = match self.stack().await? {
            Some(stack) => stack,
            None => return Ok(None),
        };
        Ok(Some(Found {
            name: self.name.clone(),
            status: status_of(&stack),
            parameter_keys: stack
                .parameters()
                .iter()
                .filter_map(|p| p.parameter_key().map(str::to_string))
                .collect(),
        }))
    }

    async fn stack(&self) -> Result<Option<Stack>> {
        match self
            .client
            .describe_stacks()
            .stack_name(&self.name)
            .send()
            .await
        {
            Ok(out) => Ok(out.stacks().first().cloned()),
            Err(err) => {
                let failure = Failure::of(&err);
                if failure.message.contains("does not exist") {
                    Ok(None)
                } else {
                    Err(self.failed("describing", &failure))
                }
            }
        }
    }

    /// Creates the stack, or updates it keeping the parameters not given, and waits.
    pub(super) async fn deploy(
        &self,
        found: Option<&Found>,
        template_url: &str,
        parameters: &[(String, String)],
    ) -> Result<Deployed> {
        let mut list: Vec<Parameter> = parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build()
            })
            .collect();
        let capabilities = [Capability::CapabilityIam, Capability::CapabilityNamedIam];
        let started = Instant::now();
        let verb = match found {
            None => {
                self.client
                    .create_stack()
                    .stack_name(&self.name)
                    .template_url(template_url)
                    .set_parameters(Some(list))
                    .set_capabilities(Some(capabilities.to_vec()))
                    .send()
                    .await
                    .map_err(|e| self.failed("creating", &Failure::of(&e)))?;
                "created"
            }
            Some(found) => {
                // Parameters of the running stack that were not given keep their values
                // (parameters new in this template take their defaults).
                list.extend(
                    found
                        .parameter_keys
                        .iter()
                        .filter(|key| !parameters.iter().any(|(k, _)| k == *key))
                        .map(|key| {
                            Parameter::builder()
                                .parameter_key(key)
                                .use_previous_value(true)
                                .build()
                        }),
                );
                let updated = self
                    .client
                    .update_stack()
                    .stack_name(&self.name)
                    .template_url(template_url)
                    .set_parameters(Some(list))
                    .set_capabilities(Some(capabilities.to_vec()))
                    .send()
                    .await;
                match updated {
                    Ok(_) => "updated",
                    Err(err) => {
                        let failure = Failure::of(&err);
                        if !failure.message.contains("No updates are to be performed") {
                            return Err(self.failed("updating", &failure));
                        }
                        let stack = self.stack().await?.expect("described above");
                        return Ok(Deployed {
                            line: format!(
                                "stack {}: already up to date ({})",
                                self.name,
                                status_of(&stack)
                            ),
                            outputs: outputs_of(&stack),
                        });
                    }
                }
            }
        };
        let stack = self.wait().await?;
        Ok(Deployed {
            line: format!(
                "stack {} {verb}: {} in {:.0} s",
                self.name,
                status_of(&stack),
                started.elapsed().as_secs_f64()
            ),
            outputs: outputs_of(&stack),
        })
    }

    /// Waits for the stack to leave `*_IN_PROGRESS`; a rollback is an error naming the first
    /// resource that failed.
    async fn wait(&self) -> Result<Stack> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let stack = self.stack().await?.ok_or_else(|| Error::Deploy {
                stack: self.name.clone(),
                message: "disappeared while deploying (deleted by someone else?)".into(),
            })?;
            let status = status_of(&stack);
            if status != last {
                eprintln!("stack {}: {status}", self.name);
                last = status.clone();
            }
            if !status.ends_with("_IN_PROGRESS") {
                if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
                    return Ok(stack);
                }
                return Err(Error::Deploy {
                    stack: self.name.clone(),
                    message: format!("{status}: {}", self.first_failure().await),
                });
            }
            if started.elapsed() > MAX_WAIT {
                return Err(Error::Deploy {
                    stack: self.name.clone(),
                    message: format!(
                        "still {status} after an hour; watch it in the CloudFormation console"
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The oldest failed resource event's resource and reason.
    async fn first_failure(&self) -> String {
        let events = match self
            .client
            .describe_stack_events()
            .stack_name(&self.name)
            .send()
            .await
        {
            Ok(out) => out.stack_events().to_vec(),
            Err(err) => {
                return format!(
                    "its events could not be read ({})",
                    Failure::of(&err).summary()
                )
            }
        };
        // Events come newest first; the first failure is the cause, later ones cancellations.
        events
            .iter()
            .rev()
            .find(|e| {
                e.resource_status()
                    .is_some_and(|s| s.as_str().ends_with("_FAILED"))
                    && e.logical_resource_id() != Some(self.name.as_str())
            })
            .map(|e| {
                format!(
                    "{} ({}) failed: {}",
                    e.logical_resource_id().unwrap_or("?"),
                    e.resource_type().unwrap_or("?"),
                    e.resource_status_reason().unwrap_or("no reason given")
                )
            })
            .unwrap_or_else(|| "no resource reported a failure; see the stack's events".into())
    }
}

fn status_of(stack: &Stack) -> String {
    stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

fn outputs_of(stack: &Stack) -> Vec<(String, String)> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect()
}
