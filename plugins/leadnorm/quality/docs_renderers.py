"""Data Docs renderers of our own, named by module in `datadocs.site_config` and loaded by GX.

GX marks every failed expectation alike, a red cross; here a failed `warning` has to read
differently from a failed `critical` one, which stopped the run. Kept apart from `datadocs`
so that serving the reports does not import GX.
"""

from __future__ import annotations

from great_expectations.render import RenderedStringTemplateContent
from great_expectations.render.renderer.content_block import ValidationResultsTableContentBlockRenderer

SEVERITY_BADGES = {"critical": "badge-danger", "warning": "badge-warning"}  # Bootstrap classes


class ResultsTableWithSeverity(ValidationResultsTableContentBlockRenderer):
    """GX's validation results table, with a severity badge next to each failed expectation's icon."""

    @classmethod
    def _get_content_block_fn(cls, expectation_type: str, expectation_config=None):
        row_fn = super()._get_content_block_fn(expectation_type=expectation_type, expectation_config=expectation_config)

        def row_with_severity(configuration=None, result=None, runtime_configuration=None, **kwargs):
            rows = row_fn(
                configuration=configuration, result=result, runtime_configuration=runtime_configuration, **kwargs
            )
            if result is not None and result.success is False:
                (cells,) = rows  # one row per result; its first cell is the status icon
                cells[0] = [cells[0], severity_badge(result.expectation_config.severity.value)]
            return rows

        return row_with_severity


def severity_badge(severity: str) -> RenderedStringTemplateContent:
    return RenderedStringTemplateContent(
        content_block_type="string_template",
        string_template={
            "template": "$severity",
            "params": {"severity": severity},
            "styling": {
                "params": {"severity": {"classes": ["badge", SEVERITY_BADGES.get(severity, "badge-secondary")]}}
            },
        },
    )
