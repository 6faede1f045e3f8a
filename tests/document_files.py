"""Builders of document files for the tests: small good ones, and hostile ones
(decompression bombs, malformed parts, deep nesting), made here rather than stored."""

import io
import struct
import zipfile
import zlib

W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
    b'.org/package/2006/content-types"><Default Extension="rels" ContentType="applicati'
    b'on/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" Conten'
    b'tType="application/xml"/><Override PartName="/word/document.xml" ContentType="ap'
    b'plication/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    b"</Types>"
)
_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxm'
    b'lformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://sch'
    b"emas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
    b'" Target="word/document.xml"/></Relationships>'
)
_CORE = (
    b'<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties xmlns:cp="http://schemas'
    b'.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.'
    b'org/dc/elements/1.1/"><dc:title>%s</dc:title></cp:coreProperties>'
)


def _package(document_xml, title=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", document_xml)
        if title is not None:
            package.writestr("docProps/core.xml", _CORE % title.encode())
    return buffer.getvalue()


def _body(xml):
    return b"<w:document %s><w:body>%s</w:body></w:document>" % (W, xml)


def paragraph_xml(text):
    return b"<w:p><w:r><w:t>%s</w:t></w:r></w:p>" % text.encode()


def docx(*paragraphs, title=None, table=()):
    """A .docx of paragraphs, then a table (rows of cell texts)."""
    rows = b"".join(
        b"<w:tr>%s</w:tr>"
        % b"".join(b"<w:tc>%s</w:tc>" % paragraph_xml(c) for c in row)
        for row in table
    )
    tables = b"<w:tbl>%s</w:tbl>" % rows if table else b""
    return _package(_body(b"".join(map(paragraph_xml, paragraphs)) + tables), title)


def docx_malformed():
    return _package(b"<w:document %s><w:body><w:p><w:r><w:t>cut off" % W)


def docx_entity_bomb():
    """A .docx whose document part defines nested entities ("billion laughs")."""
    entities = '<!ENTITY e0 "lol">' + "".join(
        f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = _body(b"<w:p><w:r><w:t>&e9;</w:t></w:r></w:p>")
    return _package(b"<!DOCTYPE w:document [%s]>%s" % (entities.encode(), body))


def docx_bomb(inflated=1 << 30):
    """A .docx of about a megabyte whose document.xml inflates to ``inflated``
    bytes of paragraphs (written in streaming, never held in memory)."""
    buffer = io.BytesIO()
    paragraphs = paragraph_xml("a") * 30_000
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", _TYPES)
        z.writestr("_rels/.rels", _RELS)
        with z.open("word/document.xml", "w", force_zip64=inflated >= 1 << 31) as part:
            part.write(b"<w:document %s><w:body>" % W)
            for _ in range(inflated // len(paragraphs)):
                part.write(paragraphs)
            part.write(b"</w:body></w:document>")
    return buffer.getvalue()


def docx_lying_about_size(inflated=256 << 20, declared=1000):
    """A zip bomb whose central directory declares its document part ``declared``
    bytes long (readers take the sizes from there)."""
    raw = bytearray(docx_bomb(inflated))
    name = b"word/document.xml"
    header = raw.index(b"PK\x01\x02")
    while raw[header + 46 : header + 46 + len(name)] != name:
        header = raw.index(b"PK\x01\x02", header + 4)
    struct.pack_into("<I", raw, header + 24, declared)  # the uncompressed size
    return bytes(raw)


def _pdf(objects):
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _stream(content):
    data = zlib.compress(content, 9)
    return b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (
        len(data),
        data,
    )


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
_PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
    b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
)


def pdf(*pages):
    """A PDF with one page per text."""
    n = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n),
        _FONT,
    ]
    for i, text in enumerate(pages):
        objects.append(_PAGE % (5 + 2 * i))
        objects.append(_stream(b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode()))
    return _pdf(objects)


def pdf_drawing(pages, operator, repeat):
    """A small PDF whose pages all run one content stream: ``operator`` (e.g.
    ``b"(a) Tj"``) ``repeat`` times; a content-stream bomb when large."""
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    content = b"BT /F1 12 Tf 72 720 Td\n" + (operator + b"\n") * repeat + b"ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        _FONT,
        _stream(content),
    ]
    objects += [_PAGE % 4] * pages
    return _pdf(objects)


def email_message(body, charset="utf-8", subject="Hello"):
    return (
        b"From: Ann <ann@example.com>\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="%s"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"
    ) % (subject.encode(), charset.encode(), body)


def email_nested(depth):
    """A message of ``depth`` multiparts, each inside the last."""
    head = b"From: a@example.com\nSubject: nested\nMIME-Version: 1.0\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\n\ndeep text\n" + closing


def docx_many_members(members, declared=None):
    """A .docx with ``members`` empty parts besides its own (stored, so about 100
    bytes each); ``declared`` overwrites the count its end record states."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as package:
        package.writestr("[Content_Types].xml", _TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", _body(paragraph_xml("many parts")))
        for i in range(members):
            package.writestr(f"word/media/{i}", b"")
    raw = bytearray(buffer.getvalue())
    if declared is not None:
        end = raw.rindex(b"PK\x05\x06")
        struct.pack_into("<HH", raw, end + 8, declared, declared)
    return bytes(raw)


def docx_embedding(name, inner):
    """A .docx of one paragraph carrying ``inner`` (a zip bomb, say) as a part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", _body(paragraph_xml("outer text")))
        package.writestr(name, inner)
    return buffer.getvalue()


def pdf_objects(*objects):
    """A PDF of the given objects (1: the catalog) over a one-page font and tree:
    the hostile part comes in as objects."""
    return _pdf(list(objects))


def flate_stream(inflated, byte=b" "):
    """A stream object of ``inflated`` bytes of ``byte``, compressed (a megabyte
    holds a gigabyte)."""
    compressor = zlib.compressobj(9)
    block = byte * (1 << 20)
    data = b"".join(compressor.compress(block) for _ in range(inflated >> 20))
    data += compressor.flush()
    return b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (
        len(data),
        data,
    )


def email_with_attachment(path, attachment_bytes, body=b"See the attachment."):
    """Write to ``path`` a message of a text body and a base64 attachment of
    ``attachment_bytes`` bytes (streamed: never held in memory here)."""
    import base64

    line = base64.encodebytes(bytes(range(256)) * 3)  # 768 bytes: 1040 encoded
    with open(path, "wb") as out:
        out.write(
            b"From: Ann <ann@example.com>\nSubject: The report\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
            b"Content-Type: text/plain; charset=utf-8\n\n%s\n--b\n"
            b"Content-Type: application/octet-stream\n"
            b'Content-Disposition: attachment; filename="report.bin"\n'
            b"Content-Transfer-Encoding: base64\n\n" % body
        )
        for _ in range(attachment_bytes // 768):
            out.write(line)
        out.write(b"--b--\n")
