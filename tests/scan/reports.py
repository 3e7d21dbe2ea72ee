"""Build Trivy JSON reports (SchemaVersion 2, the shape Trivy 0.76 writes) for the unit tests."""

from __future__ import annotations

from typing import Any


def vuln(
    vid: str, pkg: str, severity: str, installed: str = "1.0-1", fixed: str | None = None, **extra: Any
) -> dict[str, Any]:
    v: dict[str, Any] = {
        "VulnerabilityID": vid,
        "PkgID": f"{pkg}@{installed}",
        "PkgName": pkg,
        "PkgIdentifier": {"PURL": f"pkg:deb/debian/{pkg}@{installed}?arch=amd64&distro=debian-12.15", "UID": "x"},
        "InstalledVersion": installed,
        "Status": "fixed" if fixed else "affected",
        "SeveritySource": "debian",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{vid.lower()}",
        "Title": f"{pkg}: problem {vid}",
        "Severity": severity,
        "CVSS": {"nvd": {"V3Score": {"CRITICAL": 9.8, "HIGH": 7.5, "MEDIUM": 5.0, "LOW": 2.0}.get(severity, 0.0)}},
    }
    if fixed:
        v["FixedVersion"] = fixed
    v.update(extra)
    return v


def secret(rule: str = "aws-access-key-id", severity: str = "CRITICAL") -> dict[str, Any]:
    return {
        "RuleID": rule,
        "Category": "AWS",
        "Severity": severity,
        "Title": "AWS Access Key ID",
        "StartLine": 1,
        "EndLine": 1,
        "Match": "AWS_ACCESS_KEY_ID=********************",
    }


def report(os_vulns: list[dict] = (), lang_vulns: list[dict] = (), secrets: list[tuple[str, dict]] = ()) -> dict:
    results: list[dict[str, Any]] = [
        {"Target": "img.tar (debian 12.15)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": list(os_vulns)}
    ]
    if lang_vulns:
        results.append(
            {"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg", "Vulnerabilities": list(lang_vulns)}
        )
    for target, s in secrets:
        results.append({"Target": target, "Class": "secret", "Secrets": [s]})
    return {
        "SchemaVersion": 2,
        "Trivy": {"Version": "0.76.0"},
        "ArtifactName": "img.tar",
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "12.15"}, "ImageID": "sha256:abc"},
        "Results": results,
    }
