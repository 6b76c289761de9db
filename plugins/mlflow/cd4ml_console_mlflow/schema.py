"""Pydantic models of the MLflow REST responses the plugin reads (validated at the edge).

MLflow omits empty fields, so almost everything has a default; unknown fields are ignored
because newer servers add some.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Json(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Tag(_Json):
    key: str
    value: str = ""


class Alias(_Json):
    alias: str
    version: str


class RegisteredModel(_Json):
    name: str
    description: str = ""
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None
    tags: tuple[Tag, ...] = ()
    aliases: tuple[Alias, ...] = ()


class Metric(_Json):
    key: str
    value: float | None = None
    timestamp: int | None = None
    step: int | None = None


class ModelVersion(_Json):
    name: str
    version: str
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None
    user_id: str = ""
    description: str = ""
    source: str = ""
    run_id: str = ""
    status: str = "READY"
    tags: tuple[Tag, ...] = ()
    aliases: tuple[str, ...] = ()
    model_id: str = ""
    model_metrics: tuple[Metric, ...] = ()

    def tag_map(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}


class RegisteredModelPage(_Json):
    registered_models: tuple[RegisteredModel, ...] = ()
    next_page_token: str = ""


class ModelVersionPage(_Json):
    model_versions: tuple[ModelVersion, ...] = ()
    next_page_token: str = ""


class RegisteredModelReply(_Json):
    registered_model: RegisteredModel


class ModelVersionReply(_Json):
    model_version: ModelVersion


class Param(_Json):
    key: str
    value: str = ""


class RunInfo(_Json):
    run_id: str = Field(default="", validation_alias="run_id")
    run_uuid: str = ""
    experiment_id: str = ""
    user_id: str = ""
    status: str = ""
    start_time: int | None = None
    end_time: int | None = None

    @property
    def id(self) -> str:
        return self.run_id or self.run_uuid


class RunData(_Json):
    metrics: tuple[Metric, ...] = ()
    params: tuple[Param, ...] = ()
    tags: tuple[Tag, ...] = ()


class Dataset(_Json):
    name: str = ""
    digest: str = ""
    source_type: str = ""


class DatasetInput(_Json):
    tags: tuple[Tag, ...] = ()
    dataset: Dataset = Field(default_factory=Dataset)


class RunInputs(_Json):
    dataset_inputs: tuple[DatasetInput, ...] = ()


class Run(_Json):
    info: RunInfo
    data: RunData = Field(default_factory=RunData)
    inputs: RunInputs = Field(default_factory=RunInputs)


class RunReply(_Json):
    run: Run


class RunPage(_Json):
    runs: tuple[Run, ...] = ()
    next_page_token: str = ""


class Experiment(_Json):
    experiment_id: str


class ExperimentPage(_Json):
    experiments: tuple[Experiment, ...] = ()
    next_page_token: str = ""


class ErrorReply(_Json):
    error_code: str = ""
    message: str = ""
