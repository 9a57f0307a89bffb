"""Drives moto's Step Functions and EventBridge with parts of the CloudFormation template, as the
tests' client (boto3); prints one JSON answer.

  aws_tool.py sfn-run MOTO TEMPLATE FUNCTION_ARN DESTINATION INPUT_JSON TIMEOUT_S [fast-retries]
      Runs the template's state machine definition in moto's ASL interpreter to its end
      (fast-retries: every Retry's wait shortened to 1 s, so exhausting one takes seconds).
      A job continued in a new execution (output "continued_in") is followed to the execution
      that ends it: the answer is that one's, with every execution of the chain in order.
  aws_tool.py deploy MOTO TEMPLATE
      Deploys the template as a stack in moto's CloudFormation (a dummy code zip, an email and
      a schedule given), reads back what it made, deletes the stack; prints what it saw.
  aws_tool.py member-role MOTO TEMPLATE
      Deploys the member-role template twice (without and with an external id); prints each
      role's trust policy and inline policies.
  aws_tool.py retriers TEMPLATE
      Prints every Task state's Retry list of the state machine (Map children included), by
      state name, and the lake bucket's lifecycle rules.
  aws_tool.py parameter-default TEMPLATE NAME
      Prints the template parameter NAME's default as {"default": ...}.
  aws_tool.py iam-user MOTO USER POLICY_JSON
      Creates (or keeps) IAM user USER with POLICY_JSON as its only inline policy ("exporter");
      prints its access key (a new one when the user is new).
  aws_tool.py auth MOTO on|off
      Turns moto's IAM enforcement on (every request must be signed by a user's key and be
      allowed by its policies) or off.
  aws_tool.py events MOTO TEMPLATE STATE_MACHINE_ARN [failures-only]
      Puts real-shaped Step Functions status events through the template's rules and their
      InputTransformers into an SQS queue; prints what was delivered (failures-only: as
      deployed with NotifyOn failures).
"""
import json
import sys
import time
import urllib.request

import boto3
import botocore.exceptions
from cfnlint.decode import decode_str


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def resources(template_path):
    with open(template_path) as f:
        template, problems = decode_str(f.read())
    assert not problems, problems
    return template["Resources"]


def substitute(value, names):
    text = json.dumps(value)
    for name, replacement in names.items():
        text = text.replace("${" + name + "}", replacement)
    assert "${" not in text, f"unsubstituted name in {text}"
    return text


def fast_retries(definition):
    for state in definition["States"].values():
        for retrier in state.get("Retry", []):
            retrier["IntervalSeconds"], retrier["BackoffRate"] = 1, 1.0
    return definition


def cmd_sfn_run(args):
    moto, template, function_arn, destination, execution_input, timeout = args[:6]
    machine = resources(template)["ExportStateMachine"]["Properties"]
    if args[6:] == ["fast-retries"]:
        fast_retries(machine["Definition"])
    definition = substitute(
        machine["Definition"],
        {"ExportFunctionArn": function_arn, "LakeDestination": destination},
    )
    config = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    urllib.request.urlopen(urllib.request.Request(moto + "/moto-api/config", data=config, method="POST"))
    sfn = client("stepfunctions", moto)
    arn = sfn.create_state_machine(
        name=f"export-{time.time_ns()}",
        definition=definition,
        roleArn="arn:aws:iam::123456789012:role/sechub-export-states",
        type=machine["StateMachineType"],
    )["stateMachineArn"]
    name = f"run-{time.time_ns()}"
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=execution_input)["executionArn"]
    deadline = time.time() + float(timeout)
    # A job continued in a new execution: follow the chain to the execution that ends it.
    chain = []
    while True:
        described, history = wait_for(sfn, execution, deadline)
        chain.append(described_run(described, history))
        output = json.loads(described.get("output") or "null")
        continued = output.get("continued_in") if isinstance(output, dict) else None
        if not continued or time.time() > deadline:
            break
        execution = continued
    answer = dict(chain[-1])
    answer["execution_name"] = name
    answer["executions"] = chain
    answer["history_events"] = max(run["history_events"] for run in chain)
    answer["task_failures"] = [f for run in chain for f in run["task_failures"]]
    answer["slices_succeeded"] = sum(run["slices_succeeded"] for run in chain)
    print(json.dumps(answer))


def wait_for(sfn, execution, deadline):
    while True:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING" or time.time() > deadline:
            break
        time.sleep(0.5)
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return described, history


def described_run(described, history):
    failures = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    return {
        "status": described["status"],
        "name": described["name"],
        "input": json.loads(described.get("input") or "null"),
        "output": json.loads(described.get("output") or "null"),
        "error": described.get("error"),
        "cause": described.get("cause"),
        "history_events": len(history),
        "task_failures": failures,
        "last_failure": next((e["taskFailedEventDetails"].get("cause") for e in reversed(history)
                              if e["type"] == "TaskFailed"), None),
        "slices_succeeded": sum(1 for e in history if e["type"] == "TaskSucceeded"),
    }


def cmd_parameter_default(args):
    template, name = args
    with open(template) as f:
        parsed, problems = decode_str(f.read())
    assert not problems, problems
    print(json.dumps({"default": parsed["Parameters"][name].get("Default")}))


def cmd_deploy(args):
    moto, template = args
    s3 = client("s3", moto)
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="sechub-export/bootstrap-v1.zip", Body=dummy_zip())
    cf = client("cloudformation", moto)
    with open(template) as f:
        body = f.read()
    parameters = {"CodeBucket": "artifacts", "CodeKey": "sechub-export/bootstrap-v1.zip",
                  "NotificationEmail": "me@example.com", "ScheduleExpression": "rate(1 day)",
                  "MemberRoleName": "SecurityHubExportRole", "OrganizationId": "o-exampleorg1",
                  "NotifyOn": "failures", "MemorySize": "1024"}
    cf.create_stack(StackName="sechub-export", TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"],
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    for _ in range(60):
        stack = cf.describe_stacks(StackName="sechub-export")["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    made = {r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cf.list_stack_resources(StackName="sechub-export")["StackResourceSummaries"]
            if r["LogicalResourceId"]}
    bucket = outputs["LakeBucketName"]
    function = client("lambda", moto).get_function_configuration(FunctionName=outputs["FunctionName"])
    rule = client("events", moto).describe_rule(Name=made["ExecutionStatusRule"])
    groups = client("logs", moto).describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]
    seen = {
        "status": stack["StackStatus"],
        "outputs": outputs,
        "made": sorted(made),
        "encryption": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
        "key": made["ExportKey"],
        "versioning": optional(lambda: s3.get_bucket_versioning(Bucket=bucket).get("Status")),
        # moto's CloudFormation does not apply every bucket property (lifecycle, public access
        # block): None where it did not.
        "lifecycle": optional(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]),
        "function": {k: function.get(k) for k in ["Runtime", "Handler", "Architectures", "MemorySize", "Timeout"]},
        "rule_pattern": json.loads(rule["EventPattern"]),
        "log_retention": {g["logGroupName"]: g.get("retentionInDays") for g in groups},
        "parameter": client("ssm", moto).get_parameter(Name="/sechub-export/_deployments/sechub-export")["Parameter"]["Value"],
        "role_policies": role_policies(moto, function["Role"].rsplit("/", 1)[-1]),
        "states_role_policies": role_policies(moto, made["StateMachineRole"].rsplit("/", 1)[-1]),
    }
    cf.delete_stack(StackName="sechub-export")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    seen["bucket_kept_after_delete"] = bucket in buckets
    print(json.dumps(seen, default=str))


def cmd_member_role(args):
    """Deploys the member-role template with and without an external id; reads each role back."""
    moto, template = args
    cf = client("cloudformation", moto)
    iam = client("iam", moto)
    with open(template) as f:
        body = f.read()
    seen = {}
    for stack, extra in [("member", {}), ("member-external", {"ExternalId": "ext-123", "RoleName": "OtherExportRole"})]:
        parameters = {"ExporterRoleArn": "arn:aws:iam::999999999999:role/sechub-export-FunctionRole-ABC",
                      "OrganizationId": "o-exampleorg1", **extra}
        cf.create_stack(StackName=stack, TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"],
                        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
        status = wait_stack(cf, stack)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}
        name = outputs["RoleArn"].rsplit("/", 1)[-1]
        role = iam.get_role(RoleName=name)["Role"]
        seen[stack] = {
            "status": status["StackStatus"],
            "role_arn": outputs["RoleArn"],
            "trust": role["AssumeRolePolicyDocument"],
            "policies": role_policies(moto, name),
        }
    print(json.dumps(seen, default=str))


def wait_stack(cf, stack):
    for _ in range(120):
        status = cf.describe_stacks(StackName=stack)["Stacks"][0]
        if not status["StackStatus"].endswith("IN_PROGRESS"):
            return status
        time.sleep(0.5)
    return status


def role_policies(moto, role):
    """The inline policies of a role, by name, as documents (moto keeps those of a role's
    Policies property as a Python literal string)."""
    import ast
    iam = client("iam", moto)
    documents = {name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
                 for name in iam.list_role_policies(RoleName=role)["PolicyNames"]}
    return {name: ast.literal_eval(doc) if isinstance(doc, str) else doc
            for name, doc in documents.items()}


def optional(read):
    try:
        return read()
    except botocore.exceptions.ClientError:
        return None


def dummy_zip():
    import io
    import zipfile
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("bootstrap", "not run: the stack is only deployed")
    return data.getvalue()


def status_event(machine_arn, name, status, error=None, cause=None):
    region, account = "us-east-1", "123456789012"
    machine_name = machine_arn.rsplit(":", 1)[1]
    execution = f"arn:aws:states:{region}:{account}:execution:{machine_name}:{name}"
    detail = {
        "executionArn": execution,
        "stateMachineArn": machine_arn,
        "name": name,
        "status": status,
        "startDate": 1763892000000,
        "stopDate": None if status == "RUNNING" else 1763892600000,
        "input": "{}",
        "output": None,
        "inputDetails": {"included": True},
        "outputDetails": None,
        "error": error,
        "cause": cause,
    }
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Resources": [execution],
        "Detail": json.dumps(detail),
    }


def cmd_events(args):
    moto, template, machine_arn = args[:3]
    failures_only = args[3:] == ["failures-only"]
    sqs = client("sqs", moto)
    queue = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = client("events", moto)
    patterns = {}
    for name, resource in resources(template).items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        # NotifyOn failures leaves out the rules conditioned on NotifySuccess.
        if failures_only and resource.get("Condition") == "NotifySuccess":
            continue
        rule = resource["Properties"]
        pattern = json.loads(json.dumps(rule["EventPattern"]).replace(
            json.dumps({"Ref": "ExportStateMachine"}), json.dumps(machine_arn)))
        patterns[name] = pattern
        events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        transformer = rule["Targets"][0]["InputTransformer"]
        events.put_targets(Rule=name, Targets=[{"Id": "notify", "Arn": queue_arn, "InputTransformer": transformer}])
    other = machine_arn.rsplit(":", 1)[0] + ":other-machine"
    sent = [
        status_event(machine_arn, "ok-1", "SUCCEEDED"),
        status_event(machine_arn, "bad-1", "FAILED", "SechubExport.BadRequest", "invalid filters: unknown filter attribute Nope"),
        status_event(machine_arn, "slow-1", "TIMED_OUT"),
        status_event(machine_arn, "stop-1", "ABORTED"),
        status_event(machine_arn, "run-1", "RUNNING"),
        status_event(other, "theirs-1", "FAILED", "States.TaskFailed", "not ours"),
        status_event(other, "theirs-2", "SUCCEEDED"),
    ]
    answer = events.put_events(Entries=sent)
    assert answer["FailedEntryCount"] == 0, answer
    delivered = []
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        delivered += [m["Body"] for m in got]
        if not got and delivered:
            break
    print(json.dumps({"patterns": patterns, "delivered": delivered}))


def cmd_retriers(args):
    found = resources(args[0])
    def tasks(states, out):
        for name, state in states.items():
            if state.get("Type") == "Task":
                out[name] = state.get("Retry", [])
            processor = state.get("ItemProcessor")
            if processor:
                tasks(processor["States"], out)
        return out
    definition = found["ExportStateMachine"]["Properties"]["Definition"]
    rules = found["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    print(json.dumps({"tasks": tasks(definition["States"], {}), "lifecycle": rules}, default=str))


def cmd_iam_user(args):
    moto, user, policy = args
    iam = client("iam", moto)
    answer = {"user": user}
    try:
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        answer.update(access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"])
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    iam.put_user_policy(UserName=user, PolicyName="exporter", PolicyDocument=policy)
    print(json.dumps(answer))


def cmd_auth(args):
    moto, state = args
    count = {"on": b"0", "off": b"inf"}[state]
    request = urllib.request.Request(f"{moto}/moto-api/reset-auth", data=count, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request) as answer:
        print(answer.read().decode())


def main():
    command, args = sys.argv[1], sys.argv[2:]
    {"sfn-run": cmd_sfn_run, "events": cmd_events, "deploy": cmd_deploy, "member-role": cmd_member_role,
     "parameter-default": cmd_parameter_default, "retriers": cmd_retriers, "iam-user": cmd_iam_user,
     "auth": cmd_auth}[command](args)


if __name__ == "__main__":
    main()
