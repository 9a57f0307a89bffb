"""moto's server, with two gaps filled where moto 5.2.5 does less than AWS documents:

- Its Step Functions interpreter passes the parameters of Step Functions' own optimized
  integration (arn:aws:states:::states:startExecution) to boto with their Step Functions casing
  ("StateMachineArn") and returns boto's ("executionArn"): it leaves their normalisation empty
  (the interpreter it took them from converts both ways through the service model). On AWS the
  integration takes and returns the documented casing, which is what this restores.
- Its CloudFormation UpdateStack takes UsePreviousValue only for parameters given explicitly
  when the stack was made (KeyError on one that took its default); on AWS every parameter of
  the stack has a previous value. This reads it from the stack's resolved parameters.

Two more gaps matter only once a test turns IAM enforcement on (/moto-api/reset-auth):

- It authorizes HeadBucket as the action "s3:HeadBucket", which IAM does not have; AWS
  authorizes HeadBucket with s3:ListBucket on the bucket.
- It authorizes every SSM call against the resource "*"; AWS authorizes a parameter's calls
  against the parameter's ARN, which is what a least-privilege policy names.

Everything else is moto's own server, unchanged.

  moto_server.py -H HOST -p PORT
"""
import json
import sys

import botocore.session
from moto.s3 import responses as s3_responses
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.cloudformation.models import CloudFormationBackend
from moto.server import main
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service as service,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)

_MODELS = {}


def _operation(task, boto_service_name, service_action_name):
    name = task._get_boto_service_name(boto_service_name)
    action = task._get_boto_service_action(service_action_name)
    if name not in _MODELS:
        _MODELS[name] = botocore.session.get_session().get_service_model(name)
    model = _MODELS[name]
    for operation in model.operation_names:
        if botocore.xform_name(operation) == action:
            return model.operation_model(operation)
    return None


_ORIGINAL = (service.StateTaskService._normalise_parameters, service.StateTaskService._normalise_response)


def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
    if not isinstance(self, StateTaskServiceSfn):
        return _ORIGINAL[0](self, parameters, boto_service_name, service_action_name)
    operation = _operation(self, boto_service_name, service_action_name)
    if operation is not None and operation.input_shape is not None:
        self._to_boto_request(parameters, operation.input_shape)


def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
    if not isinstance(self, StateTaskServiceSfn):
        return _ORIGINAL[1](self, response, boto_service_name, service_action_name)
    operation = _operation(self, boto_service_name, service_action_name)
    if operation is not None and operation.output_shape is not None:
        self._from_boto_response(response, operation.output_shape)


def _resolve_update_parameters(self, instance, incoming_params):
    previous_values = getattr(instance, "stack_parameters", None) or instance.parameters
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in incoming_params if "ParameterValue" in p}
    parameters.update({p["ParameterKey"]: previous_values[p["ParameterKey"]]
                       for p in incoming_params if p.get("UsePreviousValue", False)})
    return parameters


def _ssm_resource(self):
    try:
        name = json.loads(self.body or "{}").get("Name")
    except ValueError:
        name = None
    if not name:
        return "*"
    path = name if name.startswith("/") else "/" + name
    return f"arn:aws:ssm:{self.region}:{self.current_account}:parameter{path}"


s3_responses.ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
SimpleSystemManagerResponse._determine_resource = _ssm_resource
CloudFormationBackend._resolve_update_parameters = _resolve_update_parameters
service.StateTaskService._normalise_parameters = _normalise_parameters
service.StateTaskService._normalise_response = _normalise_response

if __name__ == "__main__":
    sys.exit(main())
