"""cluster/kuberay/rayservice.yaml against KubeRay v1.7.0's RayService CRD schema (kept as
data in cluster/kuberay/crd/), checked as the API server checks with strict validation."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.kuberay_schema import CRD, crd_schema, errors

MANIFEST = Path(__file__).resolve().parents[2] / "cluster" / "kuberay" / "rayservice.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return dict(yaml.safe_load(CRD.read_text()))


@pytest.fixture
def manifest() -> dict[str, Any]:
    return next(doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc and doc["kind"] == "RayService")


def test_the_manifest_is_a_valid_rayservice(manifest: dict[str, Any], crd: dict[str, Any]) -> None:
    assert errors(manifest, crd) == []


def head_container(manifest: dict[str, Any]) -> dict[str, Any]:
    return dict(manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0])


@pytest.mark.parametrize("where, misspelt", [
    (lambda m: m["spec"], "serveConfigv2"),
    (lambda m: m["spec"]["rayClusterConfig"]["headGroupSpec"], "rayStartParam"),
    (lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0], "maxReplica"),
    (lambda m: m["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0], "imagePullPolicyy"),
])
def test_a_misspelt_field_at_any_depth_fails_naming_its_path(manifest: dict[str, Any], crd: dict[str, Any],
                                                             where: Any, misspelt: str) -> None:
    where(manifest)[misspelt] = where(manifest).get(misspelt[:-1], "x")
    found = errors(manifest, crd)
    assert len(found) == 1 and found[0].split(":")[0].endswith(f".{misspelt}") and "unknown field" in found[0]


def test_wrong_types_enums_and_missing_names_fail(manifest: dict[str, Any], crd: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplicas"] = "two"
    broken["spec"]["rayClusterConfig"].setdefault("autoscalerOptions", {})["upscalingMode"] = "Fast"
    del broken["metadata"]["name"]
    found = "\n".join(errors(broken, crd))
    assert "metadata.name: required" in found
    assert "spec.rayClusterConfig.workerGroupSpecs.0.minReplicas: 'two' is not of type 'integer'" in found
    assert "spec.rayClusterConfig.autoscalerOptions.upscalingMode: 'Fast' is not one of" in found
    assert errors({"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "x"}}, crd)[0].startswith(
        "(root): not a RayService")


def test_int_or_string_and_free_form_fields_take_what_kubernetes_takes(manifest: dict[str, Any],
                                                                       crd: dict[str, Any]) -> None:
    container = head_container(manifest)
    container["resources"] = {"limits": {"cpu": 2, "memory": "8Gi"}, "requests": {"cpu": "500m"}}
    container.setdefault("env", []).append({"name": "X", "value": "1"})
    manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0] = container
    manifest["metadata"]["labels"] = {"app": "engram"}  # ObjectMeta: the API server's own
    assert errors(manifest, crd) == []
    container["resources"]["limits"]["cpu"] = [2]
    assert errors(manifest, crd) != []
    schema = crd_schema(crd, "v1")
    assert schema["properties"]["spec"]["additionalProperties"] is False
