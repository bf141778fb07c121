"""Check a RayService manifest against KubeRay's CRD schema, as the Kubernetes API server
would with strict field validation (`kubectl apply --validate=strict`, the default since
Kubernetes 1.25): an unknown or misspelt field, a wrong type, a missing required field or a
value outside an enum is an error naming its path.

The schema is the CRD of ray-project/kuberay v1.7.0, kept as data in
cluster/kuberay/crd/ (its source and licence: cluster/kuberay/crd/README.md). A CRD's
openAPIV3Schema is a structural schema whose objects reject fields they do not list unless
they say `x-kubernetes-preserve-unknown-fields`; it is turned into JSON Schema here by
making that explicit, and by translating `nullable` and `x-kubernetes-int-or-string`. The
CEL rules (`x-kubernetes-validations`, three in this CRD) are not evaluated.

    python -m cluster.kuberay_schema cluster/kuberay/rayservice.yaml
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CRD = Path(__file__).parent / "kuberay" / "crd" / "ray.io_rayservices-v1.7.0.yaml"


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The openAPIV3Schema of `version` (ray.io/<version>), as JSON Schema."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = _structural(entry["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked in errors()
            return schema
    served = [entry["name"] for entry in crd["spec"]["versions"]]
    raise ValueError(f"the CRD serves versions {served}, not {version}")


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _structural(value) for key, value in node.items()
           if key not in ("properties", "x-kubernetes-validations")}
    if "properties" in node:
        out["properties"] = {name: _structural(sub) for name, sub in node["properties"].items()}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (node.get("type") == "object" and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        # Structural: only the listed fields (none listed: an empty object).
        out["additionalProperties"] = False
    return out


def errors(manifest: dict[str, Any], crd: dict[str, Any] | None = None) -> list[str]:
    """What the API server would refuse in `manifest`: one line per error, path first."""
    import jsonschema

    crd = crd if crd is not None else yaml.safe_load(CRD.read_text())
    group = crd["spec"]["group"]
    api_version = str(manifest.get("apiVersion", ""))
    kind = crd["spec"]["names"]["kind"]
    if manifest.get("kind") != kind or not api_version.startswith(f"{group}/"):
        return [f"(root): not a {kind} ({group}/...): apiVersion {api_version!r}, kind {manifest.get('kind')!r}"]
    schema = crd_schema(crd, api_version.split("/", 1)[1])
    # ObjectMeta is the API server's own type, not in the CRD: check what it checks first.
    metadata = manifest.get("metadata") or {}
    found = [] if metadata.get("name") else ["metadata.name: required"]
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        found.extend(_describe(error))
    return found


def _describe(error: Any) -> Iterator[str]:
    path = ".".join(str(part) for part in error.absolute_path) or "(root)"
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        for name in extra:
            where = f"{path}.{name}" if path != "(root)" else name
            yield f"{where}: unknown field (known here: {', '.join(known) or 'none'})"
        return
    yield f"{path}: {error.message}"


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m cluster.kuberay_schema MANIFEST.yaml ...", file=sys.stderr)
        return 2
    crd = yaml.safe_load(CRD.read_text())
    failed = 0
    for name in argv:
        for manifest in yaml.safe_load_all(Path(name).read_text()):
            if not manifest or manifest.get("kind") != crd["spec"]["names"]["kind"]:
                continue  # other objects of the same file (a Service, a Secret)
            problems = errors(manifest, crd)
            failed += len(problems)
            for line in problems:
                print(f"{name}: {line}")
    if not failed:
        print(f"valid against KubeRay {CRD.stem.rsplit('-', 1)[-1]}'s RayService schema")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
