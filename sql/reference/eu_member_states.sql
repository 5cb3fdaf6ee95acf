-- The 27 member states of the European Union, by their ISO 3166-1 alpha-2
-- code as customers.csv writes `country` (Greece is GR here, EL only in
-- VAT numbers). The one list the VAT rules read (rating.md §6, "VAT by
-- product and place", rule 3: a B2B customer in another EU country). The
-- EEA states that are not members (Iceland, Liechtenstein, Norway) are not
-- in it: a business there is outside the EU VAT area.
SELECT column1 AS country
FROM (VALUES
    ('AT'), ('BE'), ('BG'), ('CY'), ('CZ'), ('DE'), ('DK'), ('EE'), ('ES'),
    ('FI'), ('FR'), ('GR'), ('HR'), ('HU'), ('IE'), ('IT'), ('LT'), ('LU'),
    ('LV'), ('MT'), ('NL'), ('PL'), ('PT'), ('RO'), ('SE'), ('SI'), ('SK')
)
