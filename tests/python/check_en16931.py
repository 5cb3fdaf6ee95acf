#!/usr/bin/env python3
"""Runs the EN 16931 business rules (the official compiled Schematron for
CII, tests/fixtures/validators/en16931/) over Factur-X files.

    python tests/python/check_en16931.py FILE... [--xslt PATH]

Each FILE is a Factur-X PDF (its embedded `factur-x.xml` is checked) or a
CII XML file. Prints one JSON object on stdout: for each file, the list of
its failed asserts, `{"id", "flag", "location", "text"}` (flag `fatal` is a
broken rule a receiving platform rejects, `warning` is advice). Exits 0
when no file has a failed assert of flag `fatal`, 1 otherwise, 2 when a
file cannot be read.

The XSLT is XSLT 2.0, run with SaxonC-HE (`saxonche` on PyPI); the
stylesheet is compiled once for all the files.
"""

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
XSLT = os.path.join(
    HERE, "..", "fixtures", "validators", "en16931", "EN16931-CII-validation.xslt"
)
SVRL = "{http://purl.oclc.org/dsdl/svrl}"


def one_line(text):
    return " ".join(str(text or "").split())


def xml_of(path):
    """The CII XML of a file: the file itself, or the XML a PDF embeds."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"%PDF"):
        from facturx import get_facturx_xml_from_pdf

        _name, xml = get_facturx_xml_from_pdf(data, check_xsd=False)
        if not xml:
            raise ValueError(f"{path}: no factur-x.xml in the PDF")
        return xml
    return data


def failed_asserts(svrl):
    root = ET.fromstring(svrl)
    failed = []
    for node in root.iter(f"{SVRL}failed-assert"):
        text = node.find(f"{SVRL}text")
        failed.append(
            {
                "id": node.get("id", ""),
                "flag": node.get("flag", ""),
                "location": node.get("location", ""),
                "text": one_line(text.text if text is not None else ""),
            }
        )
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--xslt", default=XSLT)
    args = parser.parse_args()

    from saxonche import PySaxonProcessor

    results = {}
    with PySaxonProcessor(license=False) as processor:
        xslt = processor.new_xslt30_processor()
        executable = xslt.compile_stylesheet(stylesheet_file=os.path.abspath(args.xslt))
        for path in args.files:
            try:
                xml = xml_of(path)
                document = processor.parse_xml(xml_text=xml.decode("utf-8"))
                svrl = executable.transform_to_string(xdm_node=document)
            except Exception as error:  # a file that cannot be checked
                print(f"{path}: {one_line(error)}", file=sys.stderr)
                sys.exit(2)
            results[path] = failed_asserts(svrl.encode("utf-8"))
    print(json.dumps(results, ensure_ascii=False, indent=1))
    fatal = any(a["flag"] == "fatal" for asserts in results.values() for a in asserts)
    sys.exit(1 if fatal else 0)


if __name__ == "__main__":
    main()
