"""Describe results in the REST shapes: the global sObject list, one object's full describe with
every field's attributes, and child relationships.
"""

from __future__ import annotations

from typing import Any

from sandbox.salesforce.schema import FieldDef, ObjectDef, Schema

_SOAP = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int", "double": "xsd:double",
    "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date", "datetime": "xsd:dateTime",
}


def object_urls(name: str, version: str) -> dict[str, str]:
    """The `urls` block of an object."""
    base = f"/services/data/v{version}/sobjects/{name}"
    return {"rowTemplate": base + "/{ID}", "defaultValues": base + "/defaultValues?recordTypeId&fields=",
            "describe": base + "/describe", "sobject": base}


def object_summary(obj: ObjectDef, version: str) -> dict[str, Any]:
    """One entry of the global describe."""
    return {
        "activateable": False, "associateEntityType": None, "associateParentEntity": None,
        "createable": obj.createable, "custom": False, "customSetting": False, "deepCloneable": False,
        "deletable": obj.createable, "deprecatedAndHidden": False, "feedEnabled": obj.createable,
        "hasSubtypes": False, "isInterface": False, "isSubtype": False, "keyPrefix": obj.key_prefix,
        "label": obj.label, "labelPlural": obj.label_plural, "layoutable": True, "mergeable": obj.mergeable,
        "mruEnabled": True, "name": obj.name, "queryable": True, "replicateable": True, "retrieveable": True,
        "searchable": True, "triggerable": True, "undeletable": obj.has_is_deleted, "updateable": obj.createable,
        "urls": object_urls(obj.name, version),
    }


def global_describe(schema: Schema, version: str) -> dict[str, Any]:
    """GET /sobjects."""
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [object_summary(o, version) for o in schema.objects()]}


def field_describe(f: FieldDef) -> dict[str, Any]:
    """One field of an object describe, with the platform's full attribute set."""
    text = f.type in ("string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox",
                      "id", "reference")
    length = f.length if text else 0
    return {
        "aggregatable": f.type != "textarea", "aiPredictionField": False, "autoNumber": f.auto_number,
        "byteLength": length * 3 if text else 0, "calculated": f.calculated, "calculatedFormula": None,
        "cascadeDelete": False, "caseSensitive": False, "compoundFieldName": None, "controllerName": None,
        "createable": f.createable, "custom": f.custom, "defaultValue": f.default if f.type == "boolean" else None,
        "defaultValueFormula": None, "defaultedOnCreate": f.default is not None or f.name in ("OwnerId", "Id"),
        "dependentPicklist": False, "deprecatedAndHidden": False, "digits": f.digits, "displayLocationInDecimal": False,
        "encrypted": False, "externalId": f.external_id,
        "extraTypeInfo": "plaintextarea" if f.type == "textarea" else None,
        "filterable": f.type != "textarea" or f.length <= 255, "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False, "groupable": f.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "highScaleNumber": False, "htmlFormatted": False, "idLookup": f.type == "id" or f.unique,
        "inlineHelpText": None, "label": f.label or f.name, "length": length, "mask": None, "maskType": None,
        "name": f.name, "nameField": f.name_field, "namePointing": len(f.reference_to) > 1,
        "nillable": f.nillable, "permissionable": f.nillable and f.createable,
        "picklistValues": [
            {"active": True, "defaultValue": v == f.default, "label": v, "validFor": None, "value": v} for v in f.picklist
        ],
        "polymorphicForeignKey": len(f.reference_to) > 1, "precision": f.precision, "queryByDistance": False,
        "referenceTargetField": None, "referenceTo": list(f.reference_to), "relationshipName": f.relationship_name,
        "relationshipOrder": None, "restrictedDelete": False, "restrictedPicklist": False, "scale": f.scale,
        "searchPrefilterable": f.type == "reference", "soapType": _SOAP.get(f.type, "xsd:string"),
        "sortable": f.type != "textarea" or f.length <= 255, "type": f.type, "unique": f.unique,
        "updateable": f.updateable, "writeRequiresMasterRead": False,
    }


def child_relationships(schema: Schema, obj: ObjectDef) -> list[dict[str, Any]]:
    """Relationships from other objects that point at `obj`."""
    plural = {"Contact": "Contacts", "Opportunity": "Opportunities", "Case": "Cases", "Task": "Tasks"}
    out = []
    for child in schema.objects():
        for f in child.fields.values():
            if obj.name in f.reference_to and f.name in ("AccountId", "ContactId", "WhatId", "WhoId", "ParentId"):
                out.append({
                    "cascadeDelete": obj.name == "Account" and f.name in ("AccountId", "WhatId"),
                    "childSObject": child.name, "deprecatedAndHidden": False, "field": f.name,
                    "junctionIdListNames": [], "junctionReferenceTo": [],
                    "relationshipName": plural.get(child.name) if f.name != "ParentId" else "Child" + plural.get(child.name, child.name),
                    "restrictedDelete": False,
                })
    return out


def describe(schema: Schema, obj: ObjectDef, version: str) -> dict[str, Any]:
    """GET /sobjects/{T}/describe."""
    body = object_summary(obj, version)
    body.update({
        "actionOverrides": [], "childRelationships": child_relationships(schema, obj), "compactLayoutable": True,
        "fields": [field_describe(f) for f in obj.fields.values()], "listviewable": None, "lookupLayoutable": None,
        "namedLayoutInfos": [], "networkScopeFieldName": None,
        "recordTypeInfos": [{"active": True, "available": True, "defaultRecordTypeMapping": True, "developerName": "Master",
                             "master": True, "name": "Master", "recordTypeId": "012000000000000AAA",
                             "urls": {"layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/012000000000000AAA"}}],
        "searchLayoutable": True, "sobjectDescribeOption": "FULL", "supportedScopes": [{"label": "All", "name": "everything"}],
    })
    return body
