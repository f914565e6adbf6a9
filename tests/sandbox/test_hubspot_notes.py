"""Notes through the generic objects endpoints and the notes client, with their association types."""

from __future__ import annotations

from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate as NoteCreate

from tests.sandbox.hs_fixtures import client, fresh_sandbox, raw  # noqa: F401


def _assoc(to_id: str, type_id: int) -> dict:
    return {"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


def test_notes_are_created_with_associations_listed_and_read(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    contact = api.crm.contacts.basic_api.get_page(limit=1).results[0].id
    company = api.crm.companies.basic_api.get_page(limit=1).results[0].id
    deal = api.crm.deals.basic_api.get_page(limit=1).results[0].id
    note = api.crm.objects.notes.basic_api.create(NoteCreate(properties={
        "hs_timestamp": "2026-01-05T09:00:00Z", "hs_note_body": "Renewal risk discussed on the phone."},
        associations=[_assoc(contact, 202), _assoc(company, 190), _assoc(deal, 214)]))
    assert note.properties["hs_timestamp"] == "2026-01-05T09:00:00.000Z"
    assert note.properties["hs_createdate"] == note.properties["hs_lastmodifieddate"]
    read = api.crm.objects.basic_api.get_by_id("notes", note.id, properties=["hs_note_body"],
                                               associations=["contacts", "companies", "deals"])
    assert read.properties["hs_note_body"] == "Renewal risk discussed on the phone."
    assert {k: [(a.id, a.type) for a in v.results] for k, v in read.associations.items()} == {
        "contacts": [(contact, "note_to_contact")], "companies": [(company, "note_to_company")],
        "deals": [(deal, "note_to_deal")]}
    listed = api.crm.objects.notes.basic_api.get_page(properties=["hs_note_body"])
    assert [n.id for n in listed.results] == [note.id]
    # from the other end, with HubSpot's reverse type ids
    back = api.crm.associations.v4.basic_api.get_page("contacts", contact, "notes").results
    assert [(str(r.to_object_id), [t.type_id for t in r.association_types]) for r in back] == [(note.id, [201])]
    labels = api.crm.associations.v4.schema.definitions_api.get_all("notes", "tickets").results
    assert [(t.type_id, t.label) for t in labels] == [(228, None)]
    assert raw(fresh_sandbox, "GET", "/crm/v3/objects/0-46?limit=1").json()["results"][0]["id"] == note.id


def test_a_note_needs_its_timestamp_and_has_its_properties(fresh_sandbox):  # noqa: F811
    r = raw(fresh_sandbox, "POST", "/crm/v3/objects/notes", json={"properties": {"hs_note_body": "undated"}})
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR" and body["message"].endswith("missing: [hs_timestamp]")
    props = {p.name: p for p in client(fresh_sandbox).crm.properties.core_api.get_all("notes").results}
    assert {"hs_timestamp", "hs_note_body", "hs_attachment_ids", "hubspot_owner_id", "hs_createdate"} <= set(props)
    assert props["hs_note_body"].field_type == "textarea"
