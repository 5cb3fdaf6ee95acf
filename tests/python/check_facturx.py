#!/usr/bin/env python3
"""Checks a Factur-X PDF made by mvnobill (pipeline/facturx.rs).

    python tests/python/check_facturx.py INVOICE.pdf [--level en16931]

With the PyPI package `factur-x` (module `facturx`): extracts the embedded
`factur-x.xml`, checks that its guideline names the level asked for and
validates it against the official Factur-X XSD of that level; then checks
that the PDF's XMP declares PDF/A-3 (pdfaid:part 3) and the same Factur-X
conformance level.

Prints one line and exits 0 when all holds, 1 with the reason otherwise.

The EN 16931 business rules (schematron) are not checked here: `factur-x`
runs them only through an external Saxon HTTP server.
"""

import argparse
import logging
import sys

LEVELS = ("minimum", "basicwl", "basic", "en16931", "extended")
# fx:ConformanceLevel as the Factur-X 1.0 specification spells each level.
XMP_LEVEL = {
    "minimum": "MINIMUM",
    "basicwl": "BASIC WL",
    "basic": "BASIC",
    "en16931": "EN 16931",
    "extended": "EXTENDED",
}
NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#",
}


class Failed(Exception):
    pass


def one_line(text):
    return " ".join(str(text).split())


def xmp_property(root, prefix, name):
    """An XMP simple property, written as an element or as an attribute."""
    namespace = NS[prefix]
    for element in root.iter(f"{{{namespace}}}{name}"):
        if element.text:
            return element.text.strip()
    for description in root.iter(f"{{{NS['rdf']}}}Description"):
        value = description.get(f"{{{namespace}}}{name}")
        if value is not None:
            return value.strip()
    return None


def check(path, level):
    try:
        from facturx import get_facturx_xml_from_pdf, get_level, xml_check_xsd
        from lxml import etree
        from pypdf import PdfReader
    except ImportError as err:
        raise Failed(f"missing Python package ({err}): pip install factur-x") from err

    try:
        with open(path, "rb") as handle:
            pdf_bytes = handle.read()
    except OSError as err:
        raise Failed(f"cannot read {path}: {err.strerror}") from err

    try:
        filename, xml = get_facturx_xml_from_pdf(pdf_bytes, check_xsd=False)
    except Exception as err:  # pypdf raises many kinds on a broken file
        raise Failed(f"cannot read the PDF: {one_line(err)}") from err
    if not filename or not xml:
        raise Failed("no factur-x.xml embedded")

    try:
        root = etree.fromstring(xml)
    except etree.XMLSyntaxError as err:
        raise Failed(f"{filename} is not well-formed XML: {one_line(err)}") from err
    try:
        found = get_level(root, "factur-x")
    except Exception as err:
        raise Failed(f"{filename}: no known Factur-X guideline: {one_line(err)}") from err
    if found != level:
        raise Failed(f"{filename} is level {found}, not {level}")
    try:
        xml_check_xsd(root, flavor="factur-x", level=level)
    except Exception as err:
        raise Failed(f"{filename} fails the {level} XSD: {one_line(err)}") from err

    try:
        catalog = PdfReader(path).trailer["/Root"]
        metadata = catalog.get("/Metadata")
        xmp_bytes = metadata.get_object().get_data() if metadata is not None else None
    except Exception as err:
        raise Failed(f"cannot read the XMP metadata: {one_line(err)}") from err
    if not xmp_bytes:
        raise Failed("no XMP metadata in the catalog")
    try:
        xmp = etree.fromstring(xmp_bytes)
    except etree.XMLSyntaxError as err:
        raise Failed(f"the XMP is not well-formed: {one_line(err)}") from err
    part = xmp_property(xmp, "pdfaid", "part")
    if part != "3":
        raise Failed(f"XMP pdfaid:part is {part!r}, not '3' (PDF/A-3)")
    conformance = xmp_property(xmp, "pdfaid", "conformance")
    fx_level = xmp_property(xmp, "fx", "ConformanceLevel")
    if fx_level != XMP_LEVEL[level]:
        raise Failed(f"XMP fx:ConformanceLevel is {fx_level!r}, not {XMP_LEVEL[level]!r}")
    if "/AF" not in catalog:
        raise Failed("the catalog has no /AF (associated files) array")

    return f"{path}: OK, {filename} valid against the Factur-X {level} XSD, PDF/A-3{conformance or ''}"


def main():
    parser = argparse.ArgumentParser(description="Check a Factur-X PDF.")
    parser.add_argument("pdf", help="the Factur-X PDF to check")
    parser.add_argument("--level", default="en16931", choices=LEVELS)
    args = parser.parse_args()
    # facturx and pypdf log as they go: keep the output to one line.
    logging.disable(logging.CRITICAL)
    try:
        print(check(args.pdf, args.level))
    except Failed as err:
        print(f"{args.pdf}: FAILED, {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
