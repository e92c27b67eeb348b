from bnlab import claims


def test_every_claim_is_complete_and_unique():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in claims.CLAIMS:
        assert c.notebook.isdigit() and len(c.notebook) == 2
        assert c.statement and c.source and c.test


def test_markdown_table_has_one_row_per_claim():
    table = claims.claims_markdown()
    assert table.count("\n") == len(claims.CLAIMS) + 1
    assert "Ioffe & Szegedy 2015, Fig. 1(a)" in table
