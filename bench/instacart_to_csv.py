#!/usr/bin/env python3
"""Convert an Instacart order-products sample to Encore's canonical purchase CSV.

    python3 bench/instacart_to_csv.py IN.csv.gz OUT.csv

Input columns (the Kaggle "Instacart Market Basket Analysis" tables joined,
one row per order line): order_id, user_id, order_number, order_dow,
order_hour_of_day, days_since_prior_order, product_id, ... (extra columns such
as a leading unnamed index, add_to_cart_order and reordered are ignored).

Output columns: order_id,customer_id,item_id,timestamp,quantity,price.

Instacart has no dates, only each user's order sequence (order_number) and the
days since the user's previous order (empty for the first one, capped at 30 by
the source). Timestamps are therefore synthetic, per user:

    t(order n) = BASE + sum(days_since_prior_order of orders 2..n) days
                 + order_hour_of_day hours

with BASE = 2020-01-01T00:00:00Z. Days are only comparable *within* a user
(every user starts at BASE), which is all the next-basket split needs: it
orders each customer's orders by time. When two orders of a user would get
the same or a decreasing time (same day, earlier hour), the later order is
moved to one minute after the previous one, so time order always equals
order_number order. Quantity is 1 per line (the source has no quantities) and
price is empty (unknown). The data itself is not shipped with Encore.
"""

import csv
import gzip
import sys
from collections import defaultdict
from datetime import datetime, timezone

BASE = int(datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp())
DAY = 86_400
HOUR = 3_600


def iso(t):
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    src, dst = sys.argv[1], sys.argv[2]
    opener = gzip.open if src.endswith(".gz") else open
    # user -> order_number -> (order_id, hour, days_since_prior); order lines kept in input order.
    orders = defaultdict(dict)
    lines = []
    with opener(src, "rt", newline="") as f:
        for row in csv.DictReader(f):
            user, number = row["user_id"], int(row["order_number"])
            days = row["days_since_prior_order"]
            days = float(days) if days not in ("", "nan", "NaN") else 0.0
            orders[user][number] = (row["order_id"], int(row["order_hour_of_day"]), days)
            lines.append((row["order_id"], user, number, row["product_id"]))
    times = {}
    for user, by_number in orders.items():
        day, prev = 0.0, None
        for n in sorted(by_number):
            order_id, hour, days = by_number[n]
            if prev is not None:
                day += days
            t = BASE + int(round(day * DAY)) + hour * HOUR
            if prev is not None and t <= prev:
                t = prev + 60
            times[(user, n)] = t
            prev = t
    with open(dst, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "customer_id", "item_id", "timestamp", "quantity", "price"])
        for order_id, user, number, product in lines:
            w.writerow([order_id, user, product, iso(times[(user, number)]), 1, ""])
    print(
        f"{len(lines)} lines, {sum(len(v) for v in orders.values())} orders, "
        f"{len(orders)} users -> {dst}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
