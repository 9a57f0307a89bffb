//! `deploy`: one command from a built package to a running stack. It creates or reuses a code
//! bucket in the stack's Region, uploads the package and the template under content-addressed
//! keys, creates or updates the stack and waits for it, creates the Athena views, and prints
//! the outputs and the command that starts an export. `--dry-run` shows the plan and changes
//! nothing.

use std::path::PathBuf;

use clap::Args;

use crate::aws::AwsSettings;
use crate::error::{Error, Result};

mod code;
mod stack;
mod views;

/// The template this build deploys (the binary and its template always match).
pub const TEMPLATE: &str = include_str!("../../infra/cloudformation/sechub-export.yaml");

/// Parameters `deploy` sets itself.
const OWN_PARAMETERS: [&str; 3] = ["CodeBucket", "CodeKey", "LambdaArchitecture"];

/// `deploy` flags.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The stack to create or update.
    #[arg(long, default_value = "sechub-export")]
    pub stack_name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsSettings,
    /// The function package (scripts/package-lambda.sh builds it; scripts/deploy.sh builds and
    /// passes it).
    #[arg(long, default_value = "target/lambda/sechub-export/bootstrap.zip")]
    pub package: PathBuf,
    /// The architecture the package was built for.
    #[arg(long, default_value = "arm64", value_parser = ["arm64", "x86_64"])]
    pub arch: String,
    /// Bucket for the package and template, in the stack's Region (created when missing);
    /// default sechub-export-code-<account>-<region>.
    #[arg(long)]
    pub code_bucket: Option<String>,
    /// A template parameter, e.g. --parameter NotificationEmail=me@example.com (repeatable).
    /// On an update, parameters not given keep their current values.
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// Show what would be done (read-only calls only) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not create the Athena views after the stack is ready.
    #[arg(long)]
    pub no_views: bool,
}

/// The template's parameter names (the keys under `Parameters:`).
pub fn template_parameters(template: &str) -> Vec<&str> {
    template
        .lines()
        .skip_while(|line| *line != "Parameters:")
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' '))
        .filter_map(|line| {
            let name = line.strip_prefix("  ")?.strip_suffix(':')?;
            (!name.starts_with(' ') && !name.is_empty()).then_some(name)
        })
        .collect()
}

/// `--parameter KEY=VALUE` flags, checked against the template.
fn parse_parameters(given: &[String]) -> Result<Vec<(String, String)>> {
    let known = template_parameters(TEMPLATE);
    given
        .iter()
        .map(|flag| {
            let (key, value) = flag.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "--parameter {flag:?}: give KEY=VALUE, e.g. NotificationEmail=me@example.com"
                ))
            })?;
            if OWN_PARAMETERS.contains(&key) {
                return Err(Error::Usage(format!(
                    "--parameter {key}: deploy sets it itself (use --code-bucket, --package or --arch)"
                )));
            }
            if !known.contains(&key) {
                return Err(Error::Usage(format!(
                    "--parameter {key}: the template has no such parameter; it has {}",
                    known.join(", ")
                )));
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// Runs `deploy`; returns the lines to print.
pub async fn deploy(args: &DeployArgs) -> Result<Vec<String>> {
    let parameters = parse_parameters(&args.parameters)?;
    let package = match std::fs::read(&args.package) {
        Ok(bytes) => Some(bytes),
        Err(_) if args.dry_run => None,
        Err(e) => {
            return Err(Error::Usage(format!(
                "no package at {} ({e}): build it with scripts/package-lambda.sh, or run scripts/deploy.sh, which builds it",
                args.package.display()
            )))
        }
    };
    let caller = crate::aws::caller(&args.aws).await?;
    let bucket_name = args
        .code_bucket
        .clone()
        .unwrap_or_else(|| format!("sechub-export-code-{}-{}", caller.account_id, caller.region));
    let bucket = code::CodeBucket::find(&caller, &bucket_name).await?;
    let package = package.map(|bytes| code::Artifact::new("bootstrap.zip", bytes));
    let template = code::Artifact::new("sechub-export.yaml", TEMPLATE.as_bytes().to_vec());
    let stacks = stack::Stacks::new(&caller.config, &args.stack_name);
    let existing = stacks.describe().await?;
    if let Some(found) = &existing {
        found.check_deployable()?;
    }
    let mut lines = vec![format!(
        "deploy: stack {} in {} (account {})",
        args.stack_name, caller.region, caller.account_id
    )];
    if args.dry_run {
        lines.push(bucket.plan_line());
        for artifact in package.iter().chain([&template]) {
            lines.push(bucket.artifact_plan_line(artifact).await?);
        }
        if package.is_none() {
            lines.push(format!(
                "would upload the package {} once built (scripts/deploy.sh builds it first)",
                args.package.display()
            ));
        }
        lines.push(stack::plan_line(
            &args.stack_name,
            existing.as_ref(),
            &parameters,
        ));
        if !args.no_views {
            lines.push("would create the Athena views (archive and latest of both tables)".into());
        }
        lines.push("dry run: nothing changed".into());
        return Ok(lines);
    }
    let package = package.expect("read above unless a dry run");
    lines.extend(bucket.ensure().await?);
    lines.push(bucket.upload(&package).await?);
    lines.push(bucket.upload(&template).await?);
    let mut all = parameters;
    all.push(("CodeBucket".into(), bucket.name.clone()));
    all.push(("CodeKey".into(), package.key.clone()));
    all.push(("LambdaArchitecture".into(), args.arch.clone()));
    let template_url = bucket.url_of(&template.key);
    let deployed = stacks
        .deploy(existing.as_ref(), &template_url, &all)
        .await?;
    lines.push(deployed.line.clone());
    if !args.no_views {
        lines.extend(views::create(&caller.config, &args.stack_name, &deployed).await?);
    }
    lines.extend(deployed.outputs_lines(&caller.region));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parameters_are_read_from_the_template() {
        let names = template_parameters(TEMPLATE);
        for name in [
            "CodeBucket",
            "CodeKey",
            "NotifyOn",
            "MemorySize",
            "OrganizationId",
        ] {
            assert!(names.contains(&name), "{name}: {names:?}");
        }
        assert!(!names.contains(&"Type"), "{names:?}");
    }

    #[test]
    fn the_views_run_in_the_workgroup_the_template_names() {
        let group = TEMPLATE
            .split("  AthenaWorkGroup:\n")
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("Name:")))
            .unwrap();
        let name = group
            .trim()
            .trim_start_matches("Name: !Sub ")
            .trim_matches('"');
        assert_eq!(
            name.replace("${AWS::StackName}", "my-stack"),
            views::work_group_of("my-stack")
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_what_to_do() {
        let refused = |flag: &str| {
            parse_parameters(&[flag.to_string()])
                .unwrap_err()
                .to_string()
        };
        assert!(refused("NotifyOn").contains("KEY=VALUE"));
        assert!(refused("CodeKey=x").contains("deploy sets it itself"));
        let unknown = refused("Nope=1");
        assert!(unknown.contains("no such parameter") && unknown.contains("NotifyOn"));
        let ok = parse_parameters(&["NotifyOn=failures".into()]).unwrap();
        assert_eq!(ok, vec![("NotifyOn".to_string(), "failures".to_string())]);
    }
}
