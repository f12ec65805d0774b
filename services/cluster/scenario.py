"""The demo's consultation: a cause like Make.org's 2017-18 one, its seed proposals, the
proposals citizens add mid-run, and the hidden "true" abilities voters act on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TITLE = "Comment lutter contre les violences faites aux femmes ?"

# Seeded by the organisers (admin role): accepted at once.
SEED_PROPOSALS = (
    "Former tous les policiers et gendarmes à l'accueil des victimes de violences conjugales",
    "Créer des tribunaux spécialisés dans les violences intrafamiliales",
    "Généraliser le bracelet anti-rapprochement pour les conjoints violents",
    "Augmenter le nombre de places d'hébergement d'urgence pour les femmes victimes",
    "Enseigner le consentement et l'égalité filles-garçons dès l'école primaire",
    "Permettre de porter plainte à l'hôpital ou en ligne, sans passer par le commissariat",
    "Déployer des téléphones grave danger dans tous les départements",
    "Sanctionner systématiquement le harcèlement de rue par des amendes",
    "Financer durablement les associations d'aide aux victimes",
    "Former les médecins et les soignants à repérer les signes de violences",
    "Délivrer les ordonnances de protection en 24 heures",
    "Suspendre l'autorité parentale du parent violent pendant la procédure",
    "Lancer de grandes campagnes de sensibilisation à la télévision et sur les réseaux sociaux",
    "Créer un fichier national des auteurs de violences conjugales",
    "Donner la priorité pour un logement social aux femmes qui quittent un conjoint violent",
    "Rendre obligatoires les stages de responsabilisation pour les auteurs de violences",
    "Allonger les délais de prescription pour les violences sexuelles",
    "Ouvrir une maison des femmes dans chaque hôpital public",
    "Mieux protéger les enfants témoins de violences conjugales",
    "Punir plus sévèrement la diffusion d'images intimes sans consentement",
    "Former les enseignants à repérer les violences subies par leurs élèves",
    "Créer une aide financière d'urgence pour permettre aux victimes de partir",
    "Saisir les armes des personnes visées par une plainte pour violences conjugales",
    "Rendre le 3919 joignable 24 heures sur 24, aussi par SMS et par chat",
    "Former les managers à prévenir le harcèlement sexuel au travail",
    "Protéger les mineurs de l'accès à la pornographie violente",
    "Rembourser à 100 % les soins psychologiques des victimes",
    "Protéger les victimes étrangères sans papiers qui portent plainte",
    "Nommer un référent violences faites aux femmes dans chaque commune",
    "Publier chaque année les chiffres des plaintes, des classements et des condamnations",
)

# Written by citizens during the consultation (platform role): PENDING until moderated.
# The last one is off-topic: the moderator rejects it.
CITIZEN_PROPOSALS = (
    "Installer des bornes d'alerte dans les gares et les transports en commun",
    "Créer une application d'alerte géolocalisée reliée aux forces de l'ordre",
    "Proposer des cours d'autodéfense gratuits dans les maisons de quartier",
    "Former les chauffeurs de taxi et de VTC à réagir face au harcèlement",
    "Baisser le prix de l'essence pour tous les automobilistes",
)
REJECTED_CITIZEN = len(CITIZEN_PROPOSALS) - 1
REJECTION_REASON = "hors sujet"


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    text: str
    author_id: str
    # The hidden ability voters act on (Bradley-Terry scale); never sent to the cluster.
    true_ability: float


@dataclass(frozen=True)
class Scenario:
    title: str
    seed: tuple[Proposal, ...]
    citizens: tuple[Proposal, ...]

    def truth(self) -> dict[str, float]:
        """proposal_id -> hidden ability, for every proposal of the scenario."""
        return {p.proposal_id: p.true_ability for p in (*self.seed, *self.citizens)}


def build(seed: int, spread: float = 1.0) -> Scenario:
    """The scenario with hidden abilities drawn from N(0, spread^2), reproducibly by `seed`."""
    rng = np.random.default_rng(seed)
    abilities = rng.normal(0.0, spread, len(SEED_PROPOSALS) + len(CITIZEN_PROPOSALS))
    seeded = tuple(Proposal(f"p{i + 1:02d}", text, "organisateurs", float(abilities[i]))
                   for i, text in enumerate(SEED_PROPOSALS))
    offset = len(SEED_PROPOSALS)
    citizens = tuple(Proposal(f"c{i + 1:02d}", text, f"citoyen-{i + 1}",
                              float(abilities[offset + i]))
                     for i, text in enumerate(CITIZEN_PROPOSALS))
    return Scenario(TITLE, seeded, citizens)
