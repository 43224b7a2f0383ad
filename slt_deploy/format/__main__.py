"""``python -m slt_deploy.format``: print the measured bits/synapse vs entropy-bound table.

This is the table of docs/format.md (random binary layers, seed 0).
"""

from .report import entropy_table


def main() -> None:
    print("| layer | p | measured p | encoding | H(p)+p | bits/syn (one α) | ratio | bits/syn (α per row) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in entropy_table():
        print(f"| {r['size']}x{r['size']} | {r['p']} | {r['density']:.4f} | {r['encoding']} | {r['bound']:.4f} | "
              f"{r['bits_layer']:.4f} | {r['ratio_layer']:.3f} | {r['bits_channel']:.4f} | {r['ratio_channel']:.3f} |")


if __name__ == "__main__":
    main()
