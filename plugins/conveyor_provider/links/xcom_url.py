"""A task button whose URL the task itself stored in an XCom while it ran (empty before)."""

from __future__ import annotations

from typing import ClassVar

from airflow.sdk import BaseOperatorLink


class XComUrlLink(BaseOperatorLink):
    """Subclasses set ``name`` (the button's label) and ``xcom_key`` (where the URL is)."""

    xcom_key: ClassVar[str]

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""
