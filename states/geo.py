"""Départements and collectivités d'outre-mer: name, région, and a rough population weight.

The population (thousands of inhabitants, rounded) only weights where the
simulation places structures; nothing in the rules depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Departement:
    code: str
    name: str
    region: str
    population_k: int
    overseas: bool = False


ARA, BFC, BRE, CVL, COR = "Auvergne-Rhône-Alpes", "Bourgogne-Franche-Comté", "Bretagne", "Centre-Val de Loire", "Corse"
GES, HDF, IDF, NOR, NAQ = "Grand Est", "Hauts-de-France", "Île-de-France", "Normandie", "Nouvelle-Aquitaine"
OCC, PDL, PAC = "Occitanie", "Pays de la Loire", "Provence-Alpes-Côte d'Azur"
COM = "Collectivités d'outre-mer"

_ROWS = [
    ("01", "Ain", ARA, 660),
    ("02", "Aisne", HDF, 530),
    ("03", "Allier", ARA, 335),
    ("04", "Alpes-de-Haute-Provence", PAC, 165),
    ("05", "Hautes-Alpes", PAC, 140),
    ("06", "Alpes-Maritimes", PAC, 1100),
    ("07", "Ardèche", ARA, 330),
    ("08", "Ardennes", GES, 270),
    ("09", "Ariège", OCC, 155),
    ("10", "Aube", GES, 310),
    ("11", "Aude", OCC, 375),
    ("12", "Aveyron", OCC, 280),
    ("13", "Bouches-du-Rhône", PAC, 2050),
    ("14", "Calvados", NOR, 700),
    ("15", "Cantal", ARA, 145),
    ("16", "Charente", NAQ, 350),
    ("17", "Charente-Maritime", NAQ, 660),
    ("18", "Cher", CVL, 300),
    ("19", "Corrèze", NAQ, 240),
    ("2A", "Corse-du-Sud", COR, 160),
    ("2B", "Haute-Corse", COR, 185),
    ("21", "Côte-d'Or", BFC, 535),
    ("22", "Côtes-d'Armor", BRE, 605),
    ("23", "Creuse", NAQ, 115),
    ("24", "Dordogne", NAQ, 415),
    ("25", "Doubs", BFC, 545),
    ("26", "Drôme", ARA, 520),
    ("27", "Eure", NOR, 600),
    ("28", "Eure-et-Loir", CVL, 430),
    ("29", "Finistère", BRE, 920),
    ("30", "Gard", OCC, 750),
    ("31", "Haute-Garonne", OCC, 1430),
    ("32", "Gers", OCC, 190),
    ("33", "Gironde", NAQ, 1650),
    ("34", "Hérault", OCC, 1200),
    ("35", "Ille-et-Vilaine", BRE, 1100),
    ("36", "Indre", CVL, 215),
    ("37", "Indre-et-Loire", CVL, 610),
    ("38", "Isère", ARA, 1280),
    ("39", "Jura", BFC, 260),
    ("40", "Landes", NAQ, 420),
    ("41", "Loir-et-Cher", CVL, 330),
    ("42", "Loire", ARA, 765),
    ("43", "Haute-Loire", ARA, 230),
    ("44", "Loire-Atlantique", PDL, 1450),
    ("45", "Loiret", CVL, 685),
    ("46", "Lot", OCC, 175),
    ("47", "Lot-et-Garonne", NAQ, 330),
    ("48", "Lozère", OCC, 77),
    ("49", "Maine-et-Loire", PDL, 820),
    ("50", "Manche", NOR, 495),
    ("51", "Marne", GES, 565),
    ("52", "Haute-Marne", GES, 170),
    ("53", "Mayenne", PDL, 305),
    ("54", "Meurthe-et-Moselle", GES, 730),
    ("55", "Meuse", GES, 180),
    ("56", "Morbihan", BRE, 760),
    ("57", "Moselle", GES, 1045),
    ("58", "Nièvre", BFC, 200),
    ("59", "Nord", HDF, 2610),
    ("60", "Oise", HDF, 830),
    ("61", "Orne", NOR, 280),
    ("62", "Pas-de-Calais", HDF, 1460),
    ("63", "Puy-de-Dôme", ARA, 665),
    ("64", "Pyrénées-Atlantiques", NAQ, 690),
    ("65", "Hautes-Pyrénées", OCC, 230),
    ("66", "Pyrénées-Orientales", OCC, 480),
    ("67", "Bas-Rhin", GES, 1140),
    ("68", "Haut-Rhin", GES, 765),
    ("69", "Rhône", ARA, 1880),
    ("70", "Haute-Saône", BFC, 235),
    ("71", "Saône-et-Loire", BFC, 550),
    ("72", "Sarthe", PDL, 565),
    ("73", "Savoie", ARA, 440),
    ("74", "Haute-Savoie", ARA, 835),
    ("75", "Paris", IDF, 2130),
    ("76", "Seine-Maritime", NOR, 1250),
    ("77", "Seine-et-Marne", IDF, 1430),
    ("78", "Yvelines", IDF, 1450),
    ("79", "Deux-Sèvres", NAQ, 375),
    ("80", "Somme", HDF, 570),
    ("81", "Tarn", OCC, 390),
    ("82", "Tarn-et-Garonne", OCC, 260),
    ("83", "Var", PAC, 1090),
    ("84", "Vaucluse", PAC, 560),
    ("85", "Vendée", PDL, 690),
    ("86", "Vienne", NAQ, 440),
    ("87", "Haute-Vienne", NAQ, 370),
    ("88", "Vosges", GES, 360),
    ("89", "Yonne", BFC, 335),
    ("90", "Territoire de Belfort", BFC, 140),
    ("91", "Essonne", IDF, 1310),
    ("92", "Hauts-de-Seine", IDF, 1630),
    ("93", "Seine-Saint-Denis", IDF, 1660),
    ("94", "Val-de-Marne", IDF, 1410),
    ("95", "Val-d'Oise", IDF, 1250),
]
_OVERSEAS = [
    ("971", "Guadeloupe", "Guadeloupe", 385),
    ("972", "Martinique", "Martinique", 360),
    ("973", "Guyane", "Guyane", 285),
    ("974", "La Réunion", "La Réunion", 875),
    ("976", "Mayotte", "Mayotte", 300),
    ("975", "Saint-Pierre-et-Miquelon", COM, 6),
    ("977", "Saint-Barthélemy", COM, 10),
    ("978", "Saint-Martin", COM, 32),
    ("986", "Wallis-et-Futuna", COM, 11),
    ("987", "Polynésie française", COM, 280),
    ("988", "Nouvelle-Calédonie", COM, 270),
]

DEPARTEMENTS: dict[str, Departement] = {
    **{code: Departement(code, name, region, pop) for code, name, region, pop in _ROWS},
    **{code: Departement(code, name, region, pop, overseas=True) for code, name, region, pop in _OVERSEAS},
}


def region_of(code: str) -> str:
    dep = DEPARTEMENTS.get(code)
    return dep.region if dep else "Inconnue"


def name_of(code: str) -> str:
    dep = DEPARTEMENTS.get(code)
    return dep.name if dep else code
