"""Deduplicate companies, personas and technographics over every mention at once, in the engine.

Identity follows the contract's keys (section 3 of docs/data-contract.md), the values of a
deduplicated document come from its most recent mention that has one, per field, and both
depend only on the set of mentions, never on their order, batches or partitions. The mentions
are the tables split hands on (`leadnorm.transform.split.TABLE_KINDS`), as views of the
connection: Arrow tables in memory or Parquet files on disk, the engine spilling what does not
fit its budget. Python does only what SQL cannot: the connected components of shared emails
and LinkedIn URLs (scipy, on integers), the derived ids (BLAKE2b) and the `extra` merge.

The results are temp tables of the connection: `<kind>_keys` (each mention's entity key, by
source lead), `<kind>_merged` (each entity's values), `<kind>_ids` (each entity's derived id).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from bson import ObjectId
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from leadnorm.schema import COLLECTIONS, KINDS, with_defaults
from leadnorm.transform.clean import is_blank
from leadnorm.transform.columns import TYPES, from_cell, schema, table
from leadnorm.transform.documents import REFERENCES, document, linked
from leadnorm.transform.ids import derived_id, technographic_id
from leadnorm.transform.split import LEAD_LEVEL, TABLE_KINDS

# Oldest first, ties broken by source lead (then by place in the lead's list): the maximum is the
# most recent mention. A mention without a date is older than any with one.
_RECENCY = "coalesce(epoch_ms(recency), -9223372036854775807)"
ORDER = f"{{'r': {_RECENCY}, 't': legacy_lead_id}}"
TECH_ORDER = f"{{'r': {_RECENCY}, 't': legacy_lead_id, 's': seq}}"

COMPANY_VALUES = [c for c in COLLECTIONS["companies"].fields if c not in ("domain", "extra")]
PERSONA_VALUES = [c for c in COLLECTIONS["personas"].fields if c != "extra"]
TECH_VALUES = ["name", "category", "confidence"]


def _merged(values: list[str], order: str) -> str:
    """Each value from the most recent mention that has one; the `extra`s of all, oldest first."""
    picks = [f"arg_max({v}, {order}) FILTER (WHERE {v} IS NOT NULL) AS {v}" for v in values]
    return ", ".join([*picks, f"list(extra ORDER BY {order}) FILTER (WHERE extra IS NOT NULL) AS extras"])


def merge_extras(cells: list[bytes] | None) -> dict | None:
    """The `extra`s of an entity's mentions, oldest first, merged: a later value wins, a blank one
    never replaces a value."""
    merged: dict = {}
    for extra in map(from_cell, cells or ()):
        merged.update({key: value for key, value in extra.items() if not is_blank(value)})
    return merged or None


def resolve_companies(con: duckdb.DuckDBPyConnection) -> None:
    """A mention's company: its domain, else the smallest domain of a mention bearing its name,
    else its name; a profile with neither is a company of its own lead's."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE company_keys AS
        WITH named AS (
            SELECT name_key, min(domain) AS named_domain FROM company_mentions
            WHERE domain IS NOT NULL AND name_key IS NOT NULL GROUP BY name_key
        )
        SELECT m.*, CASE
            WHEN m.domain IS NOT NULL THEN 'domain:' || m.domain
            WHEN named.named_domain IS NOT NULL THEN 'domain:' || named.named_domain
            WHEN m.name_key IS NOT NULL THEN 'name:' || m.name_key
            ELSE 'lead:' || lower(hex(m.legacy_lead_id))
        END AS entity
        FROM company_mentions m LEFT JOIN named ON m.name_key = named.name_key
        """
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE company_merged AS "
        f"SELECT entity, {_merged(COMPANY_VALUES, ORDER)} FROM company_keys GROUP BY entity"
    )
    _derive_ids(con, "company")


def resolve_personas(con: duckdb.DuckDBPyConnection) -> None:
    """A mention's persona: the connected component of the emails and LinkedIn URLs it shares with
    others, named by its smallest identifier; else the component bearing its full name (the
    smallest where several do); else its name."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE persona_nodes AS
        SELECT node, row_number() OVER (ORDER BY node) - 1 AS n FROM (
            SELECT 'email:' || email AS node FROM persona_mentions WHERE email IS NOT NULL
            UNION SELECT 'linkedin:' || linkedin_url FROM persona_mentions WHERE linkedin_url IS NOT NULL
        )
        """
    )
    nodes = con.execute("SELECT count(*) FROM persona_nodes").fetchone()[0]
    edges = con.execute(
        """
        SELECT e.n, l.n FROM persona_mentions m
        JOIN persona_nodes e ON e.node = 'email:' || m.email
        JOIN persona_nodes l ON l.node = 'linkedin:' || m.linkedin_url
        """
    ).fetchnumpy()
    pairs = [edges[column].astype(np.int64) for column in edges]
    graph = coo_matrix((np.ones(len(pairs[0]), np.int8), (pairs[0], pairs[1])), shape=(nodes, nodes))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1 if nodes else 0, nodes, np.int64)
    np.minimum.at(smallest, labels, np.arange(nodes))  # nodes are numbered in order: the first is the smallest
    con.register("persona_roots", pa.table({"n": np.arange(nodes), "root": smallest[labels]}))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE persona_keys AS
        WITH identified AS (
            SELECT m.*, coalesce(rooted_email.node, rooted_linkedin.node) AS component FROM persona_mentions m
            LEFT JOIN persona_nodes e ON e.node = 'email:' || m.email
            LEFT JOIN persona_roots re ON re.n = e.n
            LEFT JOIN persona_nodes rooted_email ON rooted_email.n = re.root
            LEFT JOIN persona_nodes l ON l.node = 'linkedin:' || m.linkedin_url
            LEFT JOIN persona_roots rl ON rl.n = l.n
            LEFT JOIN persona_nodes rooted_linkedin ON rooted_linkedin.n = rl.root
        ), named AS (
            SELECT name_key, min(component) AS named_component FROM identified
            WHERE component IS NOT NULL AND name_key IS NOT NULL GROUP BY name_key
        )
        SELECT i.*, coalesce(i.component, named.named_component, 'name:' || coalesce(i.name_key, '')) AS entity
        FROM identified i LEFT JOIN named ON i.name_key = named.name_key
        """
    )
    con.unregister("persona_roots")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE persona_merged AS "
        f"SELECT entity, {_merged(PERSONA_VALUES, ORDER)} FROM persona_keys GROUP BY entity"
    )
    _derive_ids(con, "persona")


def _derive_ids(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    """`<kind>_ids`: each entity's id, the BLAKE2b of its key (`leadnorm.transform.ids`)."""
    parts = []
    for batch in con.sql(f"SELECT entity FROM {kind}_merged").to_arrow_reader(50_000):
        entities = batch.column(0).to_pylist()
        ids = pa.array([derived_id(kind, entity).binary for entity in entities], pa.binary(12))
        parts.append(pa.record_batch([batch.column(0), ids], names=["entity", "_id"]))
    ids = pa.Table.from_batches(parts, schema=pa.schema([("entity", pa.string()), ("_id", pa.binary(12))]))
    con.register(f"{kind}_ids_arrow", ids)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {kind}_ids AS SELECT * FROM {kind}_ids_arrow")
    con.unregister(f"{kind}_ids_arrow")


# --- the ids that already exist ----------------------------------------------------------


def keep_ids(con: duckdb.DuckDBPyConnection, kind: str, column: str) -> None:
    """`<kind>_kept(new, kept)`: the stored id each derived id maps to where they differ.

    Once written, ids are references other documents (and the application) hold, so a run maps
    each resolved entity onto the id its leads already point at. Where its leads point at several
    (two entities merged), the id with the most leads survives, then the smallest; where two
    entities claim one id (an entity split), the one holding more of its leads keeps it. An entity
    no lead pointed at keeps its derived id (salted, should that name another entity). Views the
    caller provides: `stored_refs(lead_id, company_id, persona_id)` of the normalized leads already
    stored (those of this run's scope), `lead_counts(reference, id, n)` (every lead's references
    counted), `occupied(reference, id)` (ids held outside this run, never given out), `lead_ids(
    legacy_lead_id, _id)` (the lead of every source lead with mentions)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {kind}_claims AS
        WITH claims AS ({_claims(kind, column)})
        SELECT c.*, coalesce(n.n, 0) AS held,
            row_number() OVER (PARTITION BY c.new ORDER BY coalesce(n.n, 0) DESC, c.old) AS preference,
            count(*) OVER (PARTITION BY c.old) AS claimants,
            max(c.leads) OVER (PARTITION BY c.new) AS most,
            o.id IS NOT NULL AS occupied
        FROM claims c
        LEFT JOIN lead_counts n ON n.reference = '{column}' AND n.id = c.old
        LEFT JOIN occupied o ON o.reference = '{column}' AND o.id = c.old
        """
    )
    # A derived id whose first choice nobody else wants takes it: no other claim can change that.
    direct = con.execute(
        f"SELECT new, old FROM {kind}_claims WHERE preference = 1 AND claimants = 1 AND NOT occupied"
    ).fetchall()
    kept = dict(direct)
    taken = {row[0] for row in con.execute(f"SELECT id FROM occupied WHERE reference = '{column}'").fetchall()}
    taken |= set(kept.values())
    # The others choose in turn, those holding more of an id's leads first (a split leaves the
    # id where most of its leads stay), each its preferred id not yet taken.
    contested = con.execute(
        f"""
        SELECT new, list(old ORDER BY preference) FROM {kind}_claims
        WHERE new NOT IN (SELECT new FROM {kind}_claims WHERE preference = 1 AND claimants = 1 AND NOT occupied)
        GROUP BY new, most ORDER BY most DESC, new
        """
    ).fetchall()
    for new, wanted in contested:
        choice = next((old for old in wanted if old not in taken), None)
        if choice is not None:
            kept[new] = choice
            taken.add(choice)
    # A derived id no stored one became keeps itself, unless that now names another entity.
    con.register(f"{kind}_taken", pa.table({"id": pa.array(sorted(taken), pa.binary(12))}))
    clashing = con.execute(
        f"SELECT i._id FROM {kind}_ids i JOIN {kind}_taken t ON t.id = i._id ORDER BY lower(hex(i._id))"
    ).fetchall()
    con.unregister(f"{kind}_taken")
    for (new,) in clashing:
        if new in kept:
            continue
        candidate, salt = new, 0
        while candidate in taken:
            salt += 1
            candidate = derived_id(kind, new.hex(), salt).binary  # the hex: what str() of the ObjectId is
        kept[new] = candidate
        taken.add(candidate)
    pairs = [(new, old) for new, old in kept.items() if new != old]
    mapping = pa.table(
        {"new": pa.array([p[0] for p in pairs], pa.binary(12)), "kept": pa.array([p[1] for p in pairs], pa.binary(12))}
    )
    con.register(f"{kind}_kept_arrow", mapping)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {kind}_kept AS SELECT * FROM {kind}_kept_arrow")
    con.unregister(f"{kind}_kept_arrow")


def _claims(kind: str, column: str) -> str:
    """Each resolved entity's derived id, the stored ids its leads point at, and how many of its leads each."""
    return f"""
        SELECT i._id AS new, s.{column} AS old, count(*) AS leads
        FROM lead_ids l
        JOIN {kind}_keys k ON k.legacy_lead_id = l.legacy_lead_id
        JOIN {kind}_ids i ON i.entity = k.entity
        JOIN stored_refs s ON s.lead_id = l._id
        WHERE s.{column} IS NOT NULL
        GROUP BY i._id, s.{column}
    """


def merging_ids(con: duckdb.DuckDBPyConnection, kind: str, column: str) -> list[bytes]:
    """The stored ids among which an entity whose leads point at several chooses (`keep_ids`): the only
    ones whose `lead_counts` matter. The same views as `keep_ids`, but `lead_counts` and `occupied`."""
    rows = con.execute(
        f"""
        WITH claims AS ({_claims(kind, column)})
        SELECT DISTINCT old FROM claims WHERE new IN (SELECT new FROM claims GROUP BY new HAVING count(*) > 1)
        """
    ).fetchall()
    return [row[0] for row in rows]


def no_kept_ids(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    """Nothing stored: every derived id stays."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {kind}_kept (new BLOB, kept BLOB)")


def link_leads(con: duckdb.DuckDBPyConnection) -> None:
    """`company_by_lead` and `persona_by_lead`: each source lead's company and persona, by the ids
    kept; then the technographics, one per (company, name without case)."""
    for kind in ("company", "persona"):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {kind}_by_lead AS
            SELECT k.legacy_lead_id, coalesce(kept.kept, i._id) AS {kind}_id FROM {kind}_keys k
            JOIN {kind}_ids i ON i.entity = k.entity LEFT JOIN {kind}_kept kept ON kept.new = i._id
            """
        )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE tech_merged AS
        SELECT b.company_id, t.name_key, {_merged(TECH_VALUES, TECH_ORDER)}
        FROM tech_mentions t JOIN company_by_lead b USING (legacy_lead_id)
        GROUP BY b.company_id, t.name_key
        """
    )


# --- the nine collections, each in `_id` order ----------------------------------------------

FINAL_KINDS = {name: {**kinds, "document": "bytes"} for name, kinds in KINDS.items()}


def _entity_rows(kind: str, collection: str):
    """Rows of a deduplicated collection: the merged values with the contract's defaults where no
    mention had one (optional fields stay absent), the `extra`s merged, the document encoded."""
    fields = COLLECTIONS[collection].columns

    def finish(row: dict) -> dict:
        row["extra"] = merge_extras(row.pop("extras"))
        with_defaults(collection, row)
        row["_id"] = ObjectId(row["_id"])
        if "company_id" in row:
            row["company_id"] = ObjectId(row["company_id"])
        row["document"] = document(row, fields)
        return row

    return finish


def _batches_of_rows(relation: duckdb.DuckDBPyRelation, finish, kinds: dict[str, str], rows: int):
    for batch in relation.to_arrow_reader(rows):
        data = pa.Table.from_batches([batch])
        names = data.column_names
        records = [dict(zip(names, values)) for values in zip(*(data[name].to_pylist() for name in names))]
        yield table([finish(record) for record in records], kinds).to_batches()[0] if records else None


def companies(con: duckdb.DuckDBPyConnection, rows: int = 10_000):
    """The companies, in `_id` order, as record batches of `FINAL_KINDS["companies"]`."""
    relation = con.sql(
        f"""
        SELECT coalesce(kept.kept, i._id) AS _id, m.entity, {", ".join("m." + v for v in COMPANY_VALUES)}, m.extras
        FROM company_merged m JOIN company_ids i ON i.entity = m.entity LEFT JOIN company_kept kept ON kept.new = i._id
        ORDER BY 1
        """
    )
    finish = _entity_rows("company", "companies")

    def with_domain(row: dict) -> dict:
        entity = row.pop("entity")
        row["domain"] = entity[len("domain:") :] if entity.startswith("domain:") else None
        return finish(row)

    yield from filter(None, _batches_of_rows(relation, with_domain, FINAL_KINDS["companies"], rows))


def personas(con: duckdb.DuckDBPyConnection, rows: int = 10_000):
    relation = con.sql(
        f"""
        SELECT coalesce(kept.kept, i._id) AS _id, {", ".join("m." + v for v in PERSONA_VALUES)}, m.extras
        FROM persona_merged m JOIN persona_ids i ON i.entity = m.entity LEFT JOIN persona_kept kept ON kept.new = i._id
        ORDER BY 1
        """
    )
    finish = _entity_rows("persona", "personas")
    yield from filter(None, _batches_of_rows(relation, finish, FINAL_KINDS["personas"], rows))


def technographics(con: duckdb.DuckDBPyConnection, rows: int = 10_000):
    """One per (company, name without case); its id follows its company's (`technographic_id`)."""
    merged = con.sql(f"SELECT company_id, name_key, {', '.join(TECH_VALUES)}, extras FROM tech_merged")
    parts = []
    for batch in merged.to_arrow_reader(50_000):  # the ids first: the collection goes in their order
        companies_, keys = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        ids = [technographic_id(ObjectId(company), key).binary for company, key in zip(companies_, keys)]
        parts.append(batch.append_column("_id", pa.array(ids, pa.binary(12))))
    con.register("tech_final_arrow", pa.Table.from_batches(parts, schema=_with_id(merged)))
    finish = _entity_rows("technographic", "technographics")
    relation = con.sql("SELECT _id, company_id, name, category, confidence, extras FROM tech_final_arrow ORDER BY _id")
    yield from filter(None, _batches_of_rows(relation, finish, FINAL_KINDS["technographics"], rows))
    con.unregister("tech_final_arrow")


def _with_id(relation: duckdb.DuckDBPyRelation) -> pa.Schema:
    return relation.limit(0).to_arrow_table().schema.append(pa.field("_id", pa.binary(12)))


def linked_rows(con: duckdb.DuckDBPyConnection, name: str, rows: int = 10_000, where: str = "true"):
    """Leads or research runs, in `_id` order, with the company and persona of their source lead,
    their documents put together (`leadnorm.transform.documents.linked`)."""
    kinds = FINAL_KINDS[name]
    relation = con.sql(
        f"""
        SELECT t.*, c.company_id, p.persona_id FROM {name} t
        LEFT JOIN company_by_lead c ON c.legacy_lead_id = t.legacy_lead_id
        LEFT JOIN persona_by_lead p ON p.legacy_lead_id = t.legacy_lead_id
        WHERE {where} ORDER BY t._id
        """
    )
    for batch in relation.to_arrow_reader(rows):
        references = [batch.column(r).to_pylist() for r in REFERENCES]
        documents = [
            linked(head, tail, company, persona)
            for head, tail, company, persona in zip(
                batch.column("head").to_pylist(), batch.column("tail").to_pylist(), *references
            )
        ]
        columns = {n: batch.column(n) for n in kinds if n != "document"}
        columns["document"] = pa.array(documents, pa.binary())
        yield pa.record_batch([columns[n].cast(TYPES[kinds[n]]) for n in kinds], schema=schema(kinds))


def sorted_rows(con: duckdb.DuckDBPyConnection, name: str, rows: int = 10_000, where: str = "true"):
    """A lead-level collection split made final, in `_id` order."""
    kinds = FINAL_KINDS[name]
    relation = con.sql(f"SELECT {', '.join(kinds)} FROM {name} t WHERE {where} ORDER BY _id")
    for batch in relation.to_arrow_reader(rows):
        yield pa.record_batch([batch.column(n).cast(TYPES[kinds[n]]) for n in kinds], schema=schema(kinds))


def _struct(table: str) -> str:
    """A row of a mention table as a struct, without its source lead (`leadnorm.steps.scope` keeps it)."""
    return "{" + ", ".join(f"'{c}': {c}" for c in TABLE_KINDS[table] if c != "legacy_lead_id") + "}"


def lead_keys(con: duckdb.DuckDBPyConnection, rows: int = 10_000, where: str = "true") -> pa.RecordBatchReader:
    """Each migrated source lead (of those `where` selects) with its identity keys, sorted
    (`leadnorm.transform.keys`: what can tie its company or persona to another lead's) and its
    mentions (`company`, `persona`, `techs`); in the key store's order (`leadnorm.steps.scope`)."""
    relation = con.sql(
        f"""
        WITH keyed AS (
            SELECT l.legacy_lead_id AS _id,
                coalesce(list(DISTINCT k.key ORDER BY k.key) FILTER (WHERE k.key IS NOT NULL), []) AS keys
            FROM leads l LEFT JOIN (
                SELECT legacy_lead_id, 'company-domain:' || domain AS key FROM company_mentions
                UNION ALL SELECT legacy_lead_id, 'company-name:' || name_key FROM company_mentions
                UNION ALL SELECT legacy_lead_id, 'email:' || email FROM persona_mentions
                UNION ALL SELECT legacy_lead_id, 'linkedin:' || linkedin_url FROM persona_mentions
                UNION ALL SELECT legacy_lead_id, 'persona-name:' || name_key FROM persona_mentions
            ) k ON k.legacy_lead_id = l.legacy_lead_id
            WHERE {where}
            GROUP BY l.legacy_lead_id
        ),
        company AS (SELECT legacy_lead_id, {_struct("company_mentions")} AS company FROM company_mentions),
        persona AS (SELECT legacy_lead_id, {_struct("persona_mentions")} AS persona FROM persona_mentions),
        techs AS (
            SELECT legacy_lead_id, list({_struct("tech_mentions")} ORDER BY seq) AS techs
            FROM tech_mentions GROUP BY legacy_lead_id
        )
        SELECT keyed._id, keyed.keys, company.company, persona.persona, techs.techs FROM keyed
        LEFT JOIN company ON company.legacy_lead_id = keyed._id
        LEFT JOIN persona ON persona.legacy_lead_id = keyed._id
        LEFT JOIN techs ON techs.legacy_lead_id = keyed._id
        ORDER BY octet_length(keyed._id), keyed._id
        """
    )
    return relation.to_arrow_reader(rows)


def resolve(con: duckdb.DuckDBPyConnection, *, stored: bool = False) -> None:
    """Every mention's company and persona; with `stored`, mapped onto the ids already stored
    (the caller's views of `keep_ids`)."""
    resolve_companies(con)
    resolve_personas(con)
    for kind, column in (("company", "company_id"), ("persona", "persona_id")):
        if stored:
            keep_ids(con, kind, column)
        else:
            no_kept_ids(con, kind)
    link_leads(con)


# Where a lead-level document belongs to a lead of `rewritten(legacy_lead_id, _id)`.
_OF_REWRITTEN = {
    "leads": "t.legacy_lead_id IN (SELECT legacy_lead_id FROM rewritten)",
    "research_runs": "t.legacy_lead_id IN (SELECT legacy_lead_id FROM rewritten)",
    "citations": "t.research_run_id IN (SELECT r._id FROM research_runs r JOIN rewritten USING (legacy_lead_id))",
    "detected_signals": "t.lead_id IN (SELECT _id FROM rewritten)",
    "icp_scores": "t.lead_id IN (SELECT _id FROM rewritten)",
    "icp_factor_breakdowns": "t.icp_score_id IN (SELECT s._id FROM icp_scores s JOIN rewritten w ON w._id = s.lead_id)",
}


def collections(con: duckdb.DuckDBPyConnection, rows: int = 10_000, *, rewritten: bool = False) -> dict:
    """The nine collections, each as record batches in `_id` order (after `resolve`); with
    `rewritten`, the lead-level ones only of the leads in the engine's `rewritten` table."""
    where = {name: _OF_REWRITTEN[name] if rewritten else "true" for name in LEAD_LEVEL}
    return {
        "companies": companies(con, rows),
        "personas": personas(con, rows),
        "leads": linked_rows(con, "leads", rows, where["leads"]),
        "technographics": technographics(con, rows),
        "research_runs": linked_rows(con, "research_runs", rows, where["research_runs"]),
        **{name: sorted_rows(con, name, rows, where[name]) for name in LEAD_LEVEL[2:]},
    }
