"""Synthetic nested leads: the legacy `leads` collection as the old application wrote it.

The migration must survive real data, and real data is messy. This module writes that
mess on purpose, so tests, demos and load runs all start from a known source: every
variant the data contract lists occurs at a rate of a few percent, about 1% of the leads
cannot be migrated at all, and the same (n, seed) always gives the same documents,
ObjectIds included. Companies and people are drawn from pools (about ten leads per
company, some people in several leads) built so that the generator knows exactly how
many distinct companies and people a correct migration must produce. It is built for
volume: pools and vocabularies are made once, and each lead costs a few dozen draws.
"""

from __future__ import annotations

import math
import random
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo.database import Database

from leadnorm.contract import SOURCE_COLLECTION
from leadnorm.errors import ConfigError

CHUNK_SIZE = 5_000

RESEARCHED_RATE = 0.70  # of all leads
SCORED_RATE = 0.60  # of researched leads
UNMIGRATABLE_RATE = 0.012  # of all leads
PERSON_REUSE_RATE = 0.22  # a lead names someone its company already had in another lead
LEADS_PER_COMPANY = 10

# --- vocabularies -------------------------------------------------------------------

_COMPANY_STEMS = (
    "Acme",
    "Nimbus",
    "Bluebird",
    "Nordlicht",
    "Sakura",
    "Zürich",
    "Qilin 麒麟",
    "Rocket 🚀",
    "Ōkami",
    "Crème",
    "Atlas",
    "Helios",
    "Kestrel",
    "Lumen",
    "Mosaic",
    "Orbit",
    "Pioneer",
    "Quanta",
    "Riverstone",
    "Solace",
    "Tundra",
    "Vertex",
    "Willow",
    "Zephyr",
    "Ålborg",
    "Björk",
    "Città",
    "Dragão",
    "Éclair",
    "Fjord",
    "Gaïa",
    "Hanami",
    "Iguaçu",
    "Jade 翡翠",
)
_COMPANY_SUFFIXES = (
    "Labs",
    "Analytics",
    "Systems",
    "Software",
    "Robotics",
    "Health",
    "Logistics",
    "Capital",
    "Studios",
    "Networks",
    "GmbH",
    "S.A.",
    "株式会社",
    "Technologies",
    "AI",
    "Cloud",
)
_TLDS = ("com", "io", "ai", "de", "co.jp", "com.br", "fr", "co")
_INDUSTRIES = (
    "Software",
    "Fintech 💳",
    "Healthcare",
    "Logistics",
    "E-commerce",
    "Cybersecurity",
    "Manufacturing",
    "Éducation",
    "Biotech",
    "Renewable Energy ☀️",
    "Media",
    "人工知能",
)
_SIZES = (  # company_size bucket, smallest and largest employee count
    ("1-10", 2, 10),
    ("11-50", 11, 50),
    ("51-200", 51, 200),
    ("201-500", 201, 500),
    ("501-1000", 501, 1000),
    ("1001-5000", 1001, 5000),
    ("5001+", 5001, 40000),
)
_FUNDING_STAGES = ("Bootstrapped", "Seed", "Series A", "Series B", "Series C", "Private Equity", "Public")
_REVENUES = ("<$1M", "$1M-$10M", "$10M-$50M", "$50M-$100M", "$100M+")
_HEADQUARTERS = (  # city, region, country
    ("Austin", "TX", "US"),
    ("San Francisco", "CA", "US"),
    ("New York", "NY", "US"),
    ("São Paulo", "SP", "BR"),
    ("Zürich", "ZH", "CH"),
    ("München", "BY", "DE"),
    ("東京", "Tokyo", "JP"),
    ("Montréal", "QC", "CA"),
    ("Kraków", "Małopolska", "PL"),
    ("Lagos", "LA", "NG"),
    ("Bengaluru", "KA", "IN"),
    ("Dublin", "", "IE"),
    ("Ciudad de México", "CDMX", "MX"),
    ("Reykjavík", "", "IS"),
    ("서울", "", "KR"),
)
_DESCRIPTIONS = (
    "{name} helps revenue teams grow faster 🚀",
    "{name} — plataforma de datos para equipos modernos.",
    "{name}は中小企業向けのクラウドサービスを提供しています。",
    "{name} builds software for {industry} teams.",
    "{name} : la logistique, simplement. ✨",
)
_TECHNOLOGIES = (  # name, category
    ("Salesforce", "CRM"),
    ("HubSpot", "Marketing Automation"),
    ("Snowflake", "Data Warehouse"),
    ("AWS", "Cloud"),
    ("Google Cloud", "Cloud"),
    ("Azure", "Cloud"),
    ("Kubernetes", "Infrastructure"),
    ("Segment", "CDP"),
    ("Stripe", "Payments"),
    ("Zendesk", "Support"),
    ("Slack", "Collaboration"),
    ("Datadog", "Monitoring"),
    ("Shopify", "E-commerce"),
    ("Marketo", "Marketing Automation"),
    ("PostgreSQL", "Database"),
    ("MongoDB", "Database"),
    ("Gong", "Sales Intelligence"),
    ("Outreach", "Sales Engagement"),
    ("dbt", "Data Transformation"),
    ("Tableau", "Analítica"),
    ("飞书 Lark", "Collaboration"),
)
_FIRST_NAMES = (
    "Ana",
    "Zoë",
    "José",
    "Łukasz",
    "Søren",
    "Aoife",
    "Chloé",
    "Mateus",
    "Ngozi",
    "Priya",
    "Yuki",
    "Wei",
    "Ji-woo",
    "Olúwaseun",
    "Fatima",
    "Björn",
    "Inès",
    "Lars",
    "Mia",
    "Noah",
    "Omar",
    "Paula",
    "Rafael",
    "Sofía",
    "Tomás",
    "Uma",
    "Viktor",
    "Wiktoria",
    "Xavier",
    "Yara",
    "Zainab",
    "Émile",
    "Håkon",
    "Amélie",
    "Çağla",
    "Dmitri",
    "Elif",
    "美咲",
    "俊",
    "Kwame",
)
_LAST_NAMES = (
    "Müller",
    "García",
    "Nowak",
    "Sato",
    "O'Brien",
    "Nakamura",
    "Silva",
    "Kowalski",
    "Haddad",
    "Okafor",
    "Johansson",
    "Dubois",
    "Rossi",
    "Fernández",
    "Kim",
    "Nguyễn",
    "Patel",
    "Schmidt",
    "Yılmaz",
    "Andersen",
    "Costa",
    "Ivanova",
    "Lefèvre",
    "Mendes",
    "Novák",
    "Papadopoulos",
    "Quispe",
    "Rahman",
    "Søndergaard",
    "Takahashi",
    "Vázquez",
    "Wójcik",
    "Zhang",
    "佐藤",
    "王",
    "Ó Súilleabháin",
    "Achebe",
    "Brennan",
    "Castellanos",
    "Đặng",
)
_INITIALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_SUFFIXES = ("", " Jr.", " Sr.", " II", " III", " IV")
_PERSONAL_EMAIL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "yahoo.co.jp")
_ROLES = (  # title, seniority, department, decision authority
    ("Chief Executive Officer", "C-Level", "Executive", "Decision Maker"),
    ("CTO", "C-Level", "Engineering", "Decision Maker"),
    ("Founder & CEO", "C-Level", "Executive", "Decision Maker"),
    ("VP of Sales", "VP", "Sales", "Decision Maker"),
    ("VP Marketing", "VP", "Marketing", "Decision Maker"),
    ("Head of Growth 🚀", "Director", "Marketing", "Influencer"),
    ("Directora de Ventas", "Director", "Sales", "Decision Maker"),
    ("営業部長", "Director", "Sales", "Decision Maker"),
    ("Leiter Vertrieb", "Director", "Vertrieb", "Decision Maker"),
    ("Head of Revenue Operations", "Director", "Operations", "Champion"),
    ("Sales Development Manager", "Manager", "Sales", "Influencer"),
    ("Responsable Marketing Digital", "Manager", "Marketing", "Influencer"),
    ("Engineering Manager", "Manager", "Engineering", "Influencer"),
    ("Procurement Lead", "Manager", "Finance", "Gatekeeper"),
    ("Account Executive", "Individual Contributor", "Sales", "End User"),
    ("Data Engineer", "Individual Contributor", "Engineering", "End User"),
)
_LOCATIONS = (
    "Austin, TX, US",
    "São Paulo, BR",
    "Zürich, CH",
    "東京, JP",
    "Berlin, DE",
    "Kraków, PL",
    "Lagos, NG",
    "Montréal, QC, CA",
    "Bengaluru, IN",
    "Dublin, IE",
    "서울, KR",
    "Ciudad de México, MX",
)
_BIOS = (
    "{title} at {company}. Loves ☕ and pipeline math.",
    "Ex-consultant, basée à {location}. Passionnée de croissance.",
    "営業一筋15年。{company}で新規開拓を担当。",
    "Building {company}'s go-to-market, one experiment at a time 🧪",
    "Über 10 Jahre Erfahrung im B2B-Vertrieb.",
)
_SIGNALS = (  # type, signal
    ("hiring", "Hiring 5 SDRs in Austin 📈"),
    ("hiring", "Stellenanzeige: Head of Sales (m/w/d)"),
    ("funding", "Raised a $20M Series B"),
    ("funding", "シリーズAで10億円を調達"),
    ("tech_adoption", "Migrating from HubSpot to Salesforce"),
    ("leadership_change", "New CRO appointed — ex-Datadog"),
    ("expansion", "Opening an office in São Paulo 🌎"),
    ("product_launch", "Launched an AI assistant «Nova»"),
    ("intent", "Researching sales-engagement tools on G2"),
    ("event", "Sponsoring SaaStr Europa 🎤"),
)
_SIGNAL_SOURCES = (
    "https://techcrunch.com/2024/funding-roundup",
    "https://www.linkedin.com/jobs/view/",
    "https://news.ycombinator.com/item?id=",
    "https://www.nikkei.com/article/",
    "https://g2.com/intent/",
)
_CITATION_SOURCES = (
    ("Company website", "https://{domain}/about"),
    ("LinkedIn", "https://www.linkedin.com/company/{slug}"),
    ("Crunchbase", "https://www.crunchbase.com/organization/{slug}"),
    ("日本経済新聞", "https://www.nikkei.com/search?q={slug}"),
    ("G2 Reviews ⭐", "https://www.g2.com/products/{slug}"),
    ("Presse régionale", "https://presse.example.fr/{slug}"),
)
_RESEARCH_MODELS = ("gpt-4o-2024-08-06", "gpt-4-turbo", "claude-3-5-sonnet-20241022", "jazon-research-v1.4")
_ICP_MODELS = ("icp-v1", "icp-v2.3", "icp-2024-11")
_RATIONALES = (
    "Strong fit: growing team with an active sales motion 💪",
    "Bonne adéquation, mais budget incertain.",
    "規模は理想的だが、意思決定者が不明。",
    "Weak intent signals; revisit next quarter.",
    "Tech stack overlaps with our best customers ✅",
)
_ICP_CATEGORIES = (("firmographic", 30), ("technographic", 25), ("intent", 25), ("persona", 20))
_FACTORS = {  # category -> (name, value, reason)
    "firmographic": (
        ("Industry match", "Software", "Core vertical ✅"),
        ("Company size", "51-200", "Sweet spot"),
        ("Region", "DACH", "Territoire prioritaire"),
    ),
    "technographic": (
        ("Uses a CRM", "Salesforce", "Integrates natively"),
        ("Cloud stack", "AWS", "Fits deployment"),
        ("Competitor in use", "Outreach", "競合製品を利用中"),
    ),
    "intent": (
        ("Hiring SDRs", 5, "Scaling outbound 📈"),
        ("Recent funding", "Series B", "Budget likely"),
        ("Visited pricing page", 3, "High intent"),
    ),
    "persona": (
        ("Seniority", "VP", "Can sign"),
        ("Department", "Sales", "Owns the problem"),
        ("Decision authority", "Decision Maker", "Entscheider"),
    ),
}
_LEVELS = ("High", "Medium", "Low")
_LEAD_SOURCES = ("csv_upload", "hubspot_sync", "manual", "webinar", "Événement")
_CRM_OWNERS = ("sdr-team-emea", "sdr-team-na", "ae-pool-3", "équipe-france")
_TAGS = (["webinar"], ["🔥 hot"], ["conference", "Q3"], [])
_UNREADABLE_SCORES = ("n/a", 140, -5)
_NOT_DATES = ("n/a", "last Tuesday", "2024-13-45T25:61:00Z", "soon™")
_PHONES = ("+1 512-555-0142", "+49 30 1234567", "+81 3-1234-5678", "(555) 010-9999", "+55 11 91234-5678")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_LEAD_MS = int((datetime(2023, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds() * 1000)
_LEAD_SPAN_MS = int(timedelta(days=900).total_seconds() * 1000)

_MISSING = object()  # a key the document leaves out


def _slug(text: str) -> str:
    """Lower-case ASCII letters and digits of `text` (accents folded, the rest dropped)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in folded if ch.isalnum())


def _spellings(name: str) -> tuple[str, ...]:
    """Other ways to write `name` that still compare equal without case and white space."""
    key = name.casefold()
    cased = tuple(s for s in {name.upper(), name.lower()} - {name} if s.casefold() == key and s.lower() == name.lower())
    return (*sorted(cased), f"  {name}", f"{name} ", f"\t{name.upper()} " if name.upper() in cased else f" {name}\n")


class _NameWalk:
    """A scrambled but one-to-one walk over `size` name codes, so pool names never repeat."""

    def __init__(self, size: int, rng: random.Random):
        self.size = size
        self.stride = next(s for s in range(7919, 7919 + size) if math.gcd(size, s) == 1)
        self.offset = rng.randrange(size)

    def __getitem__(self, index: int) -> tuple[int, int]:
        """(code, round): the round counts how often the walk went through all codes."""
        return (index * self.stride + self.offset) % self.size, index // self.size


class _Company:
    """One company of the pool: its true values, which each lead then writes its own way."""

    __slots__ = (
        "key",
        "name",
        "spellings",
        "domain",
        "slug",
        "industry",
        "size",
        "employees",
        "headquarters",
        "founded",
        "descriptions",
        "funding_step",
        "revenue",
        "linkedin",
        "technologies",
        "staff",
    )


class _Person:
    """One person of the pool; `kind` says what identifies them: email, linkedin or only the name."""

    __slots__ = ("key", "kind", "name", "spellings", "email", "linkedin", "role", "location", "bio")


@dataclass(frozen=True)
class SeedSummary:
    """What `seed_leads` wrote: counts only, never a name or an address."""

    target: str
    seed: int
    total: int
    researched: int
    icp_scored: int
    unmigratable: int
    companies: int
    people: int
    seconds: float
    variants: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        def share(count: int) -> str:
            return f"{count / self.total:6.1%}" if self.total else "     -"

        lines = [
            f"seeded {self.total:,} nested leads into {self.target} (seed {self.seed}, {self.seconds:.1f} s)",
            f"  {'researched':<22}{self.researched:>10,}  {share(self.researched)}",
            f"  {'icp_scored':<22}{self.icp_scored:>10,}  {share(self.icp_scored)}",
            f"  {'unmigratable':<22}{self.unmigratable:>10,}  {share(self.unmigratable)}",
            f"  {'distinct companies':<22}{self.companies:>10,}",
            f"  {'distinct people':<22}{self.people:>10,}",
            "messy variants (occurrences):",
        ]
        rows = [f"  {name:<36}{count:>8,}" for name, count in sorted(self.variants.items())]
        half = (len(rows) + 1) // 2
        for left, right in zip(rows[:half], rows[half:] + [""]):
            lines.append(f"{left:<46}{right}".rstrip())
        return "\n".join(lines)


class _LeadFactory:
    """Draws nested leads from one random stream and counts what it drew."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.rng = random.Random(seed)
        self.variants: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        stems = len(_COMPANY_STEMS)
        self.company_names = _NameWalk(stems * (stems - 1) * len(_COMPANY_SUFFIXES), self.rng)
        self.person_names = _NameWalk(len(_FIRST_NAMES) * len(_INITIALS) * len(_LAST_NAMES), self.rng)
        self.companies = [self._company(key) for key in range(max(1, n // LEADS_PER_COMPANY))]
        self.companies_mentioned: set[int] = set()
        self.people: list[_Person] = []
        self.emails_taken: set[str] = set()

    def leads(self) -> Iterator[dict]:
        for _ in range(self.n):
            yield self._lead()

    # --- pools --------------------------------------------------------------------------

    def _company(self, key: int) -> _Company:
        rng = self.rng
        code, round_ = self.company_names[key]
        first, rest = divmod(code, (len(_COMPANY_STEMS) - 1) * len(_COMPANY_SUFFIXES))
        second, suffix = divmod(rest, len(_COMPANY_SUFFIXES))
        second += second >= first
        words = [_COMPANY_STEMS[first], _COMPANY_STEMS[second], _COMPANY_SUFFIXES[suffix]]
        if round_:
            words.append(str(round_ + 1))
        company = _Company()
        company.key = key
        company.name = " ".join(words)
        company.spellings = _spellings(company.name)
        company.slug = _slug("".join(words)) or f"co{key}"
        company.domain = None if rng.random() < 0.08 else f"{company.slug}.{rng.choice(_TLDS)}"
        company.industry = rng.choice(_INDUSTRIES)
        company.size = rng.choice(_SIZES)
        company.employees = rng.randint(company.size[1], company.size[2])
        company.headquarters = rng.choice(_HEADQUARTERS)
        company.founded = rng.randint(1975, 2023)
        company.descriptions = tuple(
            t.format(name=company.name, industry=company.industry) for t in rng.sample(_DESCRIPTIONS, 2)
        )
        company.funding_step = rng.randrange(len(_FUNDING_STAGES) - 1)  # later research may see the next
        company.revenue = rng.choice(_REVENUES)
        company.linkedin = f"https://www.linkedin.com/company/{company.slug}"
        company.technologies = rng.sample(_TECHNOLOGIES, rng.randint(3, 8))
        company.staff = []
        return company

    def _person_at(self, company: _Company) -> _Person:
        """Someone the company already had in a lead, or a new person."""
        rng = self.rng
        if company.staff and rng.random() < PERSON_REUSE_RATE:
            person = rng.choice(company.staff)
            self.variants[f"person repeated by {person.kind}"] += 1
            return person
        key = len(self.people)
        code, round_ = self.person_names[key]
        rest, last = divmod(code, len(_LAST_NAMES))
        first, initial = divmod(rest, len(_INITIALS))
        suffix = _NAME_SUFFIXES[round_] if round_ < len(_NAME_SUFFIXES) else f" {round_ + 1}"
        person = _Person()
        person.key = key
        person.name = f"{_FIRST_NAMES[first]} {_INITIALS[initial]}. {_LAST_NAMES[last]}{suffix}"
        person.spellings = _spellings(person.name)
        first_slug, last_slug = _slug(_FIRST_NAMES[first]) or "lead", _slug(_LAST_NAMES[last]) or "contact"
        r = rng.random()
        person.kind = "email" if r < 0.85 else "linkedin" if r < 0.93 else "name"
        person.email = None
        if person.kind == "email":
            local = f"{first_slug}.{_INITIALS[initial].lower()}.{last_slug}{_slug(suffix)}"
            domain = company.domain or rng.choice(_PERSONAL_EMAIL_DOMAINS)
            email, taken = f"{local}@{domain}", 1
            while email in self.emails_taken:
                taken += 1
                email = f"{local}{taken}@{domain}"
            self.emails_taken.add(email)
            person.email = email
        has_linkedin = person.kind == "linkedin" or (person.kind == "email" and rng.random() < 0.7)
        person.linkedin = (
            f"https://www.linkedin.com/in/{first_slug}-{last_slug}-{key * 2654435761 % 2**32:08x}"
            if has_linkedin
            else None
        )
        person.role = rng.choice(_ROLES)
        person.location = rng.choice(_LOCATIONS)
        person.bio = rng.choice(_BIOS).format(title=person.role[0], company=company.name, location=person.location)
        company.staff.append(person)
        self.people.append(person)
        return person

    # --- messy values -------------------------------------------------------------------

    def _blank(self, value, rate: float = 0.045):
        """`value`, or now and then null, "" or a missing key instead."""
        r = self.rng.random()
        if r >= rate:
            return value
        return self._absent(r < rate / 3, r < 2 * rate / 3)

    def _nothing(self):
        """null, "" or a missing key, in equal parts."""
        r = self.rng.random()
        return self._absent(r < 1 / 3, r < 2 / 3)

    def _absent(self, null: bool, empty: bool):
        if null:
            self.variants["null value"] += 1
            return None
        if empty:
            self.variants["empty string"] += 1
            return ""
        self.variants["missing key"] += 1
        return _MISSING

    def _spelled(self, name: str, spellings: tuple[str, ...], label: str) -> str:
        if self.rng.random() < 0.08:
            self.variants[f"{label} case/white space"] += 1
            return self.rng.choice(spellings)
        return name

    def _email(self, email: str) -> str:
        r = self.rng.random()
        if r >= 0.08:
            return email
        self.variants["email case/white space"] += 1
        local, domain = email.split("@")
        return (f"  {email}", f"{email.upper()}\n", f" {local.title()}@{domain.upper()} ")[int(r / 0.08 * 3)]

    def _linkedin(self, url: str) -> str:
        r = self.rng.random()
        if r >= 0.10:
            return url
        self.variants["linkedin case/white space"] += 1
        path = url.removeprefix("https://www.")
        return (f" {url}/ ", f"HTTPS://WWW.{path.upper()}", f"http://{path.title()}?trk=public_profile ", f"\t{path}/")[
            int(r / 0.10 * 4)
        ]

    def _domain(self, domain: str):
        r = self.rng.random()
        if r < 0.74:
            return domain
        forms = (
            ("domain as URL", f"https://www.{domain.title()}/about"),
            ("domain with www.", f"www.{domain}"),
            ("domain trailing dot", f"{domain}."),
            ("domain upper case", domain.upper()),
            ("domain with port", f"{domain}:{self.rng.choice((443, 8080))}"),
            ("company domain null", None),
            ("company domain empty", ""),
        )
        label, value = forms[int((r - 0.74) / 0.26 * len(forms))]
        self.variants[label] += 1
        return value

    def _level(self) -> str:
        level = self.rng.choice(_LEVELS)
        r = self.rng.random()
        if r < 0.12:
            self.variants["level mixed case"] += 1
            return level.upper() if r < 0.06 else level.lower()
        return level

    def _date(self, instant: datetime, unreadable: bool = True):
        """Mostly a UTC datetime; sometimes an ISO string, and (where allowed) no date at all."""
        r = self.rng.random()
        if r >= 0.07:
            return instant
        if r < 0.05 or not unreadable:
            self.variants["date as ISO string"] += 1
            text = instant.isoformat(timespec="milliseconds")
            return text.replace("+00:00", "Z") if r < 0.025 else text
        self.variants["date that is no date"] += 1
        return self.rng.choice(_NOT_DATES)

    def _instant(self, after: datetime, min_s: int, max_s: int) -> datetime:
        return after + timedelta(milliseconds=self.rng.randint(min_s * 1000, max_s * 1000))

    def _unknown(self, rate: float, label: str, **fields) -> dict:
        """Fields the contract does not know, now and then."""
        if self.rng.random() < rate:
            self.variants[f"unknown field in {label}"] += 1
            return fields
        return {}

    # --- documents ----------------------------------------------------------------------

    def _lead(self) -> dict:
        rng = self.rng
        created = _EPOCH + timedelta(milliseconds=_FIRST_LEAD_MS + rng.randrange(_LEAD_SPAN_MS))
        _id = ObjectId(int(created.timestamp()).to_bytes(4, "big") + rng.getrandbits(64).to_bytes(8, "big"))
        self.stats["total"] += 1
        if rng.random() < UNMIGRATABLE_RATE:
            self.stats["unmigratable"] += 1
            return {
                "_id": _id,
                "lead_input": self._unreadable_input(),
                "status": "uploaded",
                "created_at": created,
                "updated_at": created,
            }
        company = self.companies[rng.randrange(len(self.companies))]
        person = self._person_at(company)
        self.companies_mentioned.add(company.key)
        researched = rng.random() < RESEARCHED_RATE
        scored = researched and rng.random() < SCORED_RATE
        company_profile = researched and rng.random() >= 0.01
        persona_profile = researched and rng.random() >= 0.01

        identity, persona_identity = self._identity(person, persona_profile)
        research = icp = None
        updated = created
        if researched:
            self.stats["researched"] += 1
            research, updated = self._research(
                company, person, persona_identity, created, company_profile, persona_profile
            )
        if scored:
            self.stats["icp_scored"] += 1
            icp, updated = self._icp(updated)
        lead_input = self._lead_input(company, person, identity, research and research["CompanyProfile"])

        doc = {"_id": _id, "lead_input": lead_input}
        if research is not None:
            doc["research"] = research
        if icp is not None:
            doc["icp"] = icp
        doc["status"] = "icp_scored" if scored else "researched" if researched else "uploaded"
        doc["created_at"] = self._date(created, unreadable=False)
        doc["updated_at"] = self._date(updated, unreadable=False)
        doc.update(
            self._unknown(
                0.08,
                "top level",
                crm_owner=rng.choice(_CRM_OWNERS),
                tags=rng.choice(_TAGS),
                import_batch=f"batch-{created:%Y%m}",
            )
        )
        return doc

    def _unreadable_input(self):
        """A lead_input no migration can read: not an object, or neither name nor email."""
        rng = self.rng
        r = rng.random()
        company = rng.choice(self.companies)
        if r < 0.25:
            self.variants["lead_input is a string"] += 1
            return f"{rng.choice(_ROLES)[0]} @ {company.name}"
        if r < 0.5:
            self.variants["lead_input is null"] += 1
            return None
        if r < 0.75:
            self.variants["lead_input is a list"] += 1
            return [rng.choice(_ROLES)[0], company.name]
        self.variants["lead_input without name or email"] += 1
        lead_input = {
            "name": self._nothing(),
            "title": rng.choice(_ROLES)[0],
            "company": company.name,
            "email": self._nothing(),
        }
        return {k: v for k, v in lead_input.items() if v is not _MISSING}

    def _carriers(self, profile) -> tuple[bool, bool]:
        """Whether lead_input, the profile or both carry the person's identifying value."""
        if not profile:
            return True, False
        r = self.rng.random()
        return r >= 0.06, r < 0.06 or r >= 0.12

    def _identity(self, person: _Person, profile) -> tuple[dict, dict]:
        """(lead_input part, PersonaProfile part) for name, email and LinkedIn.

        Every mention of a person carries the person's strongest key (email, else LinkedIn,
        else only the name) on at least one side, so mentions of one person always meet.
        """
        rng = self.rng
        email_in_input, email_in_profile = self._carriers(profile) if person.email else (False, False)
        linkedin_in_input, linkedin_in_profile = (
            self._carriers(profile)
            if person.kind == "linkedin"
            else (rng.random() < 0.5, rng.random() < 0.8)
            if person.linkedin
            else (False, False)
        )
        nameless_input = email_in_input and rng.random() < 0.04
        lead_input = {
            "name": self._nothing() if nameless_input else self._spelled(person.name, person.spellings, "person name"),
            "email": self._email(person.email) if email_in_input else self._nothing(),
        }
        if linkedin_in_input:
            lead_input["linkedin_url"] = self._linkedin(person.linkedin)
        persona = {
            "full_name": self._blank(self._spelled(person.name, person.spellings, "person name"), 0.04),
            "email": self._email(person.email) if email_in_profile else self._nothing(),
            "linkedin_url": self._linkedin(person.linkedin) if linkedin_in_profile else self._nothing(),
        }
        return lead_input, persona

    def _lead_input(self, company: _Company, person: _Person, identity: dict, company_profile) -> dict:
        """The uploaded row; its company may be left out only where the profile names it."""
        rng = self.rng
        profile_named = bool(company_profile and company_profile.get("name"))
        company_name = self._spelled(company.name, company.spellings, "company name")
        lead_input = {
            "name": identity["name"],
            "title": self._blank(person.role[0]),
            "company": self._blank(company_name) if profile_named else company_name,
            "email": identity["email"],
        }
        if "linkedin_url" in identity:
            lead_input["linkedin_url"] = identity["linkedin_url"]
        if rng.random() < 0.15:
            self.variants["unknown field in lead_input (phone)"] += 1
            lead_input["phone"] = rng.choice(_PHONES)
        if rng.random() < 0.30:
            self.variants["unknown field in lead_input (source)"] += 1
            lead_input["source"] = rng.choice(_LEAD_SOURCES)
        lead_input.update(self._unknown(0.03, "lead_input", utm_campaign="spring-launch-🌸"))
        return {k: v for k, v in lead_input.items() if v is not _MISSING}

    def _research(
        self,
        company: _Company,
        person: _Person,
        persona_identity: dict,
        created: datetime,
        company_profile: bool,
        persona_profile: bool,
    ) -> tuple[dict, datetime]:
        rng = self.rng
        started = self._instant(created, 60, 30 * 86400)
        duration_ms = rng.randint(15_000, 300_000)
        completed = started + timedelta(milliseconds=duration_ms)
        research = {
            "CompanyProfile": self._company_profile(company) if company_profile else None,
            "PersonaProfile": self._persona_profile(person, persona_identity) if persona_profile else None,
            "DetectedSignals": self._signals(started),
            "ResearchMeta": self._research_meta(company, started, completed, duration_ms),
        }
        if not (company_profile and persona_profile):
            self.variants["profile null"] += 1
        return research, completed

    def _company_profile(self, company: _Company) -> dict:
        rng = self.rng
        name = self._blank(self._spelled(company.name, company.spellings, "company name"), 0.04)
        if company.domain:
            domain = self._domain(company.domain)
            website = f"https://{company.domain}" if rng.random() < 0.5 else f"https://www.{company.domain}/"
            website = self._blank(website)
        else:
            self.variants["company without any domain"] += 1
            domain, website = self._nothing(), self._nothing()
        employees = company.employees
        if rng.random() < 0.25:
            employees = max(1, round(employees * rng.uniform(0.85, 1.15)))
        funding = _FUNDING_STAGES[company.funding_step + (rng.random() < 0.15)]
        profile = {
            "name": name,
            "domain": domain,
            "website": website,
            "industry": self._blank(company.industry),
            "company_size": self._blank(company.size[0]),
            "employee_count": self._number(employees, "employee_count"),
            "headquarters": self._headquarters(company.headquarters),
            "founded_year": self._number(company.founded, "founded_year"),
            "description": self._blank(rng.choice(company.descriptions)),
            "funding_stage": self._blank(funding),
            "annual_revenue": self._blank(company.revenue),
            "linkedin_url": self._blank(company.linkedin),
            "technographics": self._technographics(company.technologies),
        }
        profile.update(self._unknown(0.05, "CompanyProfile", crunchbase_rank=rng.randint(1, 90_000), ticker=None))
        return {k: v for k, v in profile.items() if v is not _MISSING}

    def _number(self, value: int, label: str):
        r = self.rng.random()
        if r < 0.05:
            self.variants[f"numeric string {label}"] += 1
            return str(value)
        return self._nothing() if r < 0.08 else value

    def _headquarters(self, place: tuple[str, str, str]):
        r = self.rng.random()
        if r < 0.05:
            return self._nothing()
        if r < 0.60:
            self.variants["headquarters as string"] += 1
            return ", ".join(part for part in place if part)
        self.variants["headquarters as object"] += 1
        return dict(zip(("city", "region", "country"), place))

    def _technographics(self, technologies: list[tuple[str, str]]):
        rng = self.rng
        r = rng.random()
        if r < 0.04:
            self.variants["null list technographics"] += 1
            return None
        chosen = rng.sample(technologies, rng.randint(2, len(technologies)))
        if r < 0.12:
            self.variants["technographics as strings"] += 1
            items = [name for name, _ in chosen]
        else:
            items = [{"name": name, "category": category, "confidence": self._level()} for name, category in chosen]
        if rng.random() < 0.05:
            self.variants["duplicate technographics"] += 1
            name, category = rng.choice(chosen)
            twin = name.lower() if name.lower() != name else name.upper()
            items.append(twin if r < 0.12 else {"name": twin, "category": category, "confidence": self._level()})
        return items

    def _persona_profile(self, person: _Person, identity: dict) -> dict:
        rng = self.rng
        title, seniority, department, authority = person.role
        if rng.random() < 0.1:
            title = rng.choice(_ROLES)[0]
        profile = {
            "full_name": identity["full_name"],
            "email": identity["email"],
            "title": self._blank(title),
            "seniority": self._blank(seniority),
            "department": self._blank(department),
            "decision_authority": self._blank(authority),
            "linkedin_url": identity["linkedin_url"],
            "location": self._blank(person.location),
            "bio": self._blank(person.bio),
        }
        profile.update(
            self._unknown(
                0.05,
                "PersonaProfile",
                twitter_handle=f"@{_slug(person.name)[:12]}",
                pronouns=rng.choice(("she/her", "he/him", "they/them")),
            )
        )
        return {k: v for k, v in profile.items() if v is not _MISSING}

    def _signals(self, before: datetime):
        rng = self.rng
        r = rng.random()
        if r < 0.04:
            self.variants["null list DetectedSignals"] += 1
            return None
        if r < 0.08:
            self.variants["single object DetectedSignals"] += 1
            return self._signal(before)
        return [self._signal(before) for _ in range(rng.randint(0, 3))]

    def _signal(self, before: datetime) -> dict:
        rng = self.rng
        kind, text = rng.choice(_SIGNALS)
        signal = {
            "type": kind,
            "signal": self._blank(text),
            "strength": self._level(),
            "detected_at": self._date(before - timedelta(seconds=rng.randint(3600, 60 * 86400))),
            "source_url": self._blank(f"{rng.choice(_SIGNAL_SOURCES)}{rng.randint(1000, 99999)}"),
        }
        signal.update(self._unknown(0.04, "signal", sentiment=rng.choice(("positive", "neutral"))))
        return {k: v for k, v in signal.items() if v is not _MISSING}

    def _research_meta(self, company: _Company, started: datetime, completed: datetime, duration_ms: int) -> dict:
        rng = self.rng
        meta = {}
        if rng.random() >= 0.1:
            meta["run_id"] = f"run_{rng.getrandbits(48):012x}"
        meta["model"] = rng.choice(_RESEARCH_MODELS)
        meta["started_at_utc"] = self._date(started)
        meta["completed_at_utc"] = self._date(completed)
        meta["duration_ms"] = duration_ms
        if rng.random() >= 0.15:
            meta["confidence"] = self._level()
        if rng.random() < 0.04:
            self.variants["null list citations"] += 1
            meta["citations"] = None
        else:
            meta["citations"] = [
                {
                    "source_name": name,
                    "url": url.format(domain=company.domain or f"{company.slug}.example", slug=company.slug),
                    "accessed_at_utc": self._date(started + timedelta(milliseconds=rng.randint(0, duration_ms))),
                }
                for name, url in rng.sample(_CITATION_SOURCES, rng.randint(1, 3))
            ]
        meta.update(self._unknown(0.05, "ResearchMeta", tokens_used=rng.randint(2_000, 60_000), prompt_version="v7-ß"))
        return meta

    def _icp(self, after: datetime) -> tuple[dict, datetime]:
        rng = self.rng
        score = min(100, max(0, round(rng.gauss(58, 18))))
        scored = self._instant(after, 30, 3 * 86400)
        tier = "A" if score >= 80 else "B" if score >= 60 else "C" if score >= 40 else "D"
        r = rng.random()
        if r < 0.05:
            self.variants["numeric string icp_score"] += 1
            icp_score = str(score)
        elif r < 0.07:
            self.variants["unreadable icp_score"] += 1
            icp_score = rng.choice(_UNREADABLE_SCORES)
        else:
            icp_score = score if r < 0.8 else score + rng.choice((0.25, 0.5))
        r = rng.random()
        if r < 0.05:
            self.variants["fit_tier lower case"] += 1
            tier = tier.lower()
        elif r < 0.10:
            self.variants["fit_tier as 'Tier X'"] += 1
            tier = f"Tier {tier}"
        legacy = rng.random() < 0.15
        breakdown = {
            category: self._category(category, round(score * top / 100), top, legacy)
            for category, top in _ICP_CATEGORIES
        }
        icp = {
            "icp_score": icp_score,
            "fit_tier": tier,
            "score_breakdown": breakdown,
            "scored_at": self._date(scored),
            "model_version": self._blank(rng.choice(_ICP_MODELS)),
            "rationale": self._blank(rng.choice(_RATIONALES)),
        }
        return {k: v for k, v in icp.items() if v is not _MISSING}, scored

    def _category(self, category: str, score: int, top: int, legacy: bool) -> dict:
        """One score_breakdown entry; legacy documents write their factors as plain text."""
        rng = self.rng
        entry = {"score": score}
        if rng.random() >= 0.15:
            entry["max_score"] = top
        if rng.random() < 0.03:
            self.variants["null list factors"] += 1
            entry["factors"] = None
            return entry
        factors = []
        for name, value, reason in rng.sample(_FACTORS[category], rng.randint(1, 3)):
            if legacy:
                self.variants["factor as string"] += 1
                factors.append(f"{name}: {reason}")
                continue
            factor = {"name": name}
            if rng.random() >= 0.1:
                factor["value"] = value
            if rng.random() >= 0.1:
                factor["points"] = rng.randint(1, max(1, top // 3))
            if rng.random() >= 0.1:
                factor["reason"] = reason
            factors.append(factor)
        entry["factors"] = factors
        return entry


def generate_leads(n: int, seed: int = 0) -> Iterator[dict]:
    """`n` nested lead documents in the legacy shape; the same (n, seed), the same documents."""
    return _LeadFactory(n, seed).leads()


def seed_leads(db: Database, n: int, seed: int = 0, drop: bool = False) -> SeedSummary:
    """Write `n` generated leads into db.leads; refuses a non-empty collection unless `drop`."""
    started = time.perf_counter()
    leads = db[SOURCE_COLLECTION]
    existing = leads.count_documents({})
    if existing and not drop:
        raise ConfigError(f"{SOURCE_COLLECTION} already holds {existing} documents; pass --drop to replace them")
    if drop:
        leads.drop()
    factory = _LeadFactory(n, seed)
    chunk: list[dict] = []
    for doc in factory.leads():
        chunk.append(doc)
        if len(chunk) == CHUNK_SIZE:
            leads.insert_many(chunk, ordered=False)
            chunk = []
    if chunk:
        leads.insert_many(chunk, ordered=False)
    return SeedSummary(
        target=f"{db.name}.{SOURCE_COLLECTION}",
        seed=seed,
        total=factory.stats["total"],
        researched=factory.stats["researched"],
        icp_scored=factory.stats["icp_scored"],
        unmigratable=factory.stats["unmigratable"],
        companies=len(factory.companies_mentioned),
        people=len(factory.people),
        seconds=time.perf_counter() - started,
        variants=dict(factory.variants),
    )
