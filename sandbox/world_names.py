"""Word lists for the synthetic world: company, person, title and subject names, and the sales reps."""

from __future__ import annotations

import random

from sandbox.world_records import Owner

FIRST_NAMES = (
    "Ada Alan Alice Amara Ana Andre Anika Ben Bianca Carla Carlos Chen Chloe Dana David Diego Elena Emil Emma "
    "Farah Felix Fatima Grace Hana Hugo Ines Isaac Ivan Jade James Jana Jon Julia Kai Kenji Lara Leo Lina Luca "
    "Maya Marco Mei Mila Nadia Nina Noah Omar Olga Paul Priya Rafael Rosa Ruth Sam Sara Sofia Tariq Tom Uma "
    "Victor Vera Wei Yara Yusuf Zoe Zara Aiden Beatriz Cyrus Daria Eitan Freya Goran Helga Imani Joao Keiko"
).split()
LAST_NAMES = (
    "Abbott Adeyemi Alvarez Andersen Bauer Becker Brooks Chen Costa Dubois Duarte Eklund Evans Fischer Fontaine "
    "Garcia Gupta Hansen Hoffmann Ibrahim Ito Jensen Johnson Kaur Keller Kim Kowalski Larsen Lopez Martin Meyer "
    "Moreau Nakamura Nguyen Novak Okafor Olsen Patel Perez Petrov Quinn Rossi Sato Schmidt Silva Singh Smith "
    "Tanaka Thomas Torres Ueda Vasquez Vogel Wagner Walker Weber Wong Yamada Young Zhang Ziegler Moretti Haddad"
).split()
TITLES = (
    "CEO", "CFO", "CTO", "COO", "VP Sales", "VP Engineering", "VP Operations", "Head of IT", "IT Manager",
    "Procurement Manager", "Finance Director", "Operations Manager", "Product Manager", "Engineer",
    "Analyst", "Office Manager", "Customer Success Lead", "Marketing Director", "Support Lead", "Buyer",
)
INDUSTRIES = (
    "Software", "Manufacturing", "Retail", "Healthcare", "Financial Services", "Logistics", "Education",
    "Energy", "Media", "Telecommunications", "Construction", "Hospitality", "Agriculture", "Insurance",
    "Professional Services", "Government",
)
_ADJECTIVES = (
    "Blue Bright Cedar Clear Copper Crimson Delta Eastern Golden Granite Green Harbor High Iron Lake Lunar "
    "Maple Modern North Nova Oak Open Pacific Pine Prime Quiet Rapid Red River Silver Solid Summit Swift "
    "True Union Urban Vast West Wild Alpine Atlas Beacon Bold Coastal Crystal Falcon Summit Stone Sterling"
).split()
_NOUNS = (
    "Anchor Arrow Bay Bridge Canyon Crest Field Forge Gate Grove Haven Hill Line Mesa Mill Peak Point Port "
    "Ridge Rock Sky Spring Star Stream Tower Trail Vale View Wave Works Path Harbor Signal Orbit Spark"
).split()
_SUFFIXES = (
    "Logistics", "Systems", "Labs", "Foods", "Health", "Capital", "Energy", "Retail", "Media", "Partners",
    "Industries", "Software", "Group", "Analytics", "Motors", "Telecom", "Builders", "Farms", "Insurance", "Studio",
)
CASE_SUBJECTS = (
    "Cannot log in", "Invoice discrepancy", "Data export fails", "Integration error", "Slow dashboard",
    "Feature request", "Password reset", "API rate limit exceeded", "Missing records after import",
    "User provisioning", "Report shows wrong totals", "Webhook not firing", "Outage on EU instance",
    "SSO configuration", "Billing address change", "Mobile app crashes", "Permission error",
)
ACTIVITY_SUBJECTS = {
    "call": ("Discovery call", "Check-in call", "Renewal call", "Pricing call", "Follow-up call"),
    "email": ("Follow-up", "Proposal sent", "Contract draft", "Quarterly review notes", "Product update"),
    "meeting": ("Quarterly business review", "Onsite visit", "Demo", "Executive sponsor meeting", "Workshop"),
}


def company_name(rng: random.Random) -> tuple[str, str]:
    """A plausible company name and the slug its domain is made from."""
    adj, noun, suffix = rng.choice(_ADJECTIVES), rng.choice(_NOUNS), rng.choice(_SUFFIXES)
    return f"{adj} {noun} {suffix}", f"{adj}{noun}-{suffix}".lower()


def owners(seed: int = 0) -> list[Owner]:
    """The 20 sales reps of the world, the same for a given seed."""
    rng = random.Random(seed * 7919 + 17)
    reps: list[Owner] = []
    seen: set[tuple[str, str]] = set()
    while len(reps) < 20:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if (first, last) in seen:
            continue
        seen.add((first, last))
        key = f"U{len(reps) + 1:03d}"
        reps.append(Owner(key=key, name=f"{first} {last}", email=f"{first}.{last}@rapport-sales.example.com".lower()))
    return reps
