#!/usr/bin/env python3
"""Derives data/sample/online_retail_catalog.csv from the bundled Online Retail file.

title: the most frequent Description of each StockCode (title-cased).
category: a keyword heuristic on the title (first matching group wins, else "other").
available: false for the codes that are fees and postage, not products, so that
they are never recommended.

Run from the repository root: python3 data/sample/make_catalog.py
"""
import collections
import csv
import gzip

SRC = "data/sample/online_retail.csv.gz"
DST = "data/sample/online_retail_catalog.csv"
NOT_PRODUCTS = {"POST", "D", "C2", "DOT", "M", "m", "BANK CHARGES", "S", "AMAZON FEE", "PADS", "B", "CRUK"}
CATEGORIES = [
    ("christmas", ["CHRISTMAS", "XMAS", "SANTA", "REINDEER", "ADVENT"]),
    ("bags", ["BAG", "PURSE"]),
    ("lighting", ["CANDLE", "T-LIGHT", "LIGHT", "LANTERN", "LAMP"]),
    ("kitchen", ["MUG", "CUP", "PLATE", "BOWL", "JAR", "TEA", "CAKE", "BAKING", "LUNCH", "KITCHEN",
                 "APRON", "BOTTLE", "NAPKIN", "SPOON", "TIN"]),
    ("cards and wrap", ["CARD", "WRAP", "RIBBON", "TISSUE", "TAPE", "GIFT"]),
    ("stationery", ["NOTEBOOK", "PEN", "PENCIL", "STICKER", "BOOK", "SKETCH", "ERASER", "RULER"]),
    ("toys", ["TOY", "GAME", "PUZZLE", "DOLL", "DOMINO", "SPACEBOY", "TEDDY"]),
    ("garden", ["GARDEN", "PLANT", "FLOWER POT", "WATERING", "BIRD"]),
    ("jewellery", ["NECKLACE", "EARRING", "BRACELET", "RING ", "HAIR", "BROOCH"]),
    ("home decor", ["SIGN", "FRAME", "CUSHION", "CLOCK", "HEART", "DECORATION", "MIRROR", "HOOK",
                    "DOORSTOP", "VASE", "BOX"]),
]


def main():
    titles = collections.defaultdict(collections.Counter)
    with gzip.open(SRC, "rt", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            d = (row["Description"] or "").strip()
            if d:
                titles[row["StockCode"]][d] += 1
    with open(DST, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "category", "price", "available"])
        for code in sorted(titles):
            raw = titles[code].most_common(1)[0][0]
            upper = raw.upper()
            if code in NOT_PRODUCTS:
                category, available = "fees and postage", "false"
            else:
                category = next((c for c, kws in CATEGORIES if any(k in upper for k in kws)), "other")
                available = "true"
            w.writerow([code, raw.title() if raw.isupper() else raw, category, "", available])


if __name__ == "__main__":
    main()
