"""The form schema endpoint (contract §7.1)."""

from __future__ import annotations

from typing import Any

from syncd.simulator.world import Component, Template, World


def _props(component: Component) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": component.component_id,
        "label": component.label_text,
        "required": component.required,
        "bizAlias": component.biz_alias,
    }
    if component.placeholder:
        props["placeholder"] = component.placeholder
    if component.options:
        props["options"] = list(component.options)
    if component.type in ("DDDateField", "DDDateRangeField"):
        props["unit"] = "天" if component.unit == "day" else "小时"
        props["format"] = "yyyy-MM-dd" if component.unit == "day" else "yyyy-MM-dd HH:mm"
    return props


def _item(component: Component) -> dict[str, Any]:
    item: dict[str, Any] = {"componentName": component.type, "props": _props(component)}
    if component.children:
        item["children"] = [_item(child) for child in component.children]
    return item


def schema_result(world: World, template: Template, created_ms: int) -> dict[str, Any]:
    """The ``result`` of the schema response for one template."""
    creator = world.users[0].user_id if world.users else ""
    return {
        "formCode": template.process_code,
        "name": template.name,
        "status": template.status,
        "formUuid": template.form_uuid or f"FORM-{template.process_code}",
        "creatorUserId": creator,
        "appUuid": "",
        "memo": "",
        "ownerIdType": "orgId",
        "procType": "inner",
        "engineType": 0,
        "appType": 0,
        "bizType": "",
        "listOrder": 1,
        "visibleRange": "all",
        "customSetting": "",
        "icon": "common",
        "gmtCreate": str(created_ms),
        "gmtModified": str(created_ms),
        "schemaContent": {
            "title": template.name,
            "icon": "common",
            "items": [_item(c) for c in template.components],
        },
    }
