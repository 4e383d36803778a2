"""A small YAML reader (standard library only) for the subset Kubernetes manifests use.

Supported: block mappings and sequences, flow collections ({a: b}, [x, y]) that may span
lines, plain / single-quoted / double-quoted scalars with YAML 1.2 core-schema resolution
(null, true/false, ints incl. 0x/0o, floats), block scalars (| and > with - and + chomping),
comments, several documents separated by '---'. Not supported (YAMLError): anchors, aliases,
tags other than the standard !!str/!!int, complex keys, multi-line plain scalars in flow.
"""

import json
import re


class YAMLError(ValueError):
    pass


_INT_RE = re.compile(r'^[-+]?[0-9]+$')
_HEX_RE = re.compile(r'^0x[0-9a-fA-F]+$')
_OCT_RE = re.compile(r'^0o[0-7]+$')
_FLOAT_RE = re.compile(r'^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$')


def _resolve_plain(s):
    if s in ('', '~', 'null', 'Null', 'NULL'):
        return None
    if s in ('true', 'True', 'TRUE'):
        return True
    if s in ('false', 'False', 'FALSE'):
        return False
    if _INT_RE.match(s):
        return int(s, 10)
    if _HEX_RE.match(s):
        return int(s[2:], 16)
    if _OCT_RE.match(s):
        return int(s[2:], 8)
    if _FLOAT_RE.match(s):
        return float(s)
    if s in ('.inf', '.Inf', '.INF', '+.inf'):
        return float('inf')
    if s in ('-.inf', '-.Inf', '-.INF'):
        return float('-inf')
    if s in ('.nan', '.NaN', '.NAN'):
        return float('nan')
    return s


def _strip_comment(line):
    """Remove a trailing comment (a '#' preceded by whitespace, outside quotes)."""
    out = []
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            out.append(c)
            if quote == "'" and c == "'":
                if i + 1 < len(line) and line[i + 1] == "'":
                    out.append("'")
                    i += 1
                else:
                    quote = None
            elif quote == '"' and c == '\\':
                if i + 1 < len(line):
                    out.append(line[i + 1])
                    i += 1
            elif quote == '"' and c == '"':
                quote = None
        else:
            if c == '#' and (i == 0 or line[i - 1] in ' \t'):
                break
            if c in '"\'' and (i == 0 or line[i - 1] in ' \t[{,:-'):
                quote = c
            out.append(c)
        i += 1
    return ''.join(out).rstrip()


class _Line:
    __slots__ = ('indent', 'text', 'raw', 'no', 'raw_index')

    def __init__(self, indent, text, raw, no):
        self.indent = indent
        self.text = text
        self.raw = raw
        self.no = no


class _Flow:
    """Parser for flow collections and quoted scalars on a single string."""

    def __init__(self, s, lineno):
        self.s = s
        self.i = 0
        self.lineno = lineno

    def err(self, msg):
        raise YAMLError('line %d: %s' % (self.lineno, msg))

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in ' \t\n':
            self.i += 1

    def value(self):
        self.ws()
        if self.i >= len(self.s):
            return None
        c = self.s[self.i]
        if c == '{':
            return self.mapping()
        if c == '[':
            return self.seq()
        if c == '"' or c == "'":
            return self.quoted()
        return self.plain()

    def quoted(self):
        q = self.s[self.i]
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.s):
                self.err('unterminated quoted string')
            c = self.s[self.i]
            if q == "'" and c == "'":
                if self.s[self.i + 1:self.i + 2] == "'":
                    out.append("'")
                    self.i += 2
                    continue
                self.i += 1
                break
            if q == '"' and c == '"':
                self.i += 1
                break
            if q == '"' and c == '\\':
                self.i += 1
                e = self.s[self.i:self.i + 1]
                simple = {'n': '\n', 't': '\t', 'r': '\r', '"': '"', '\\': '\\', '/': '/',
                          '0': '\0', ' ': ' ', 'a': '\a', 'b': '\b', 'e': '\x1b', 'f': '\f',
                          'v': '\v', 'N': '\x85', '_': '\xa0'}
                if e in simple:
                    out.append(simple[e])
                    self.i += 1
                elif e in ('x', 'u', 'U'):
                    n = {'x': 2, 'u': 4, 'U': 8}[e]
                    h = self.s[self.i + 1:self.i + 1 + n]
                    try:
                        out.append(chr(int(h, 16)))
                    except ValueError:
                        self.err('bad escape \\%s%s' % (e, h))
                    self.i += 1 + n
                elif e == '\n':
                    self.i += 1
                else:
                    self.err('bad escape \\%s' % e)
                continue
            if c == '\n':
                # line folding inside quotes: a single newline becomes a space
                j = self.i + 1
                while j < len(self.s) and self.s[j] in ' \t':
                    j += 1
                if j < len(self.s) and self.s[j] == '\n':
                    out.append('\n')
                    self.i = j + 1
                    continue
                while out and out[-1] in ' \t':
                    out.pop()
                out.append(' ')
                self.i = j
                continue
            out.append(c)
            self.i += 1
        return ''.join(out)

    def plain(self, in_key=False):
        start = self.i
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in ',]}\n':
                break
            if c == ':' and (self.i + 1 >= len(self.s) or self.s[self.i + 1] in ' ,]}\n'):
                break
            self.i += 1
        return _resolve_plain(self.s[start:self.i].strip())

    def mapping(self):
        self.i += 1
        out = {}
        while True:
            self.ws()
            if self.i >= len(self.s):
                self.err('unterminated flow mapping')
            if self.s[self.i] == '}':
                self.i += 1
                return out
            if self.s[self.i] in '"\'':
                k = self.quoted()
            else:
                k = self.plain(True)
                if k is not None and not isinstance(k, str):
                    k = json.dumps(k) if not isinstance(k, bool) else str(k).lower()
            self.ws()
            v = None
            if self.i < len(self.s) and self.s[self.i] == ':':
                self.i += 1
                self.ws()
                if self.i < len(self.s) and self.s[self.i] in ',}':
                    v = None
                else:
                    v = self.value()
            out['' if k is None else k] = v
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ',':
                self.i += 1
            elif self.i < len(self.s) and self.s[self.i] == '}':
                continue
            else:
                self.err('expected , or } in flow mapping')

    def seq(self):
        self.i += 1
        out = []
        while True:
            self.ws()
            if self.i >= len(self.s):
                self.err('unterminated flow sequence')
            if self.s[self.i] == ']':
                self.i += 1
                return out
            out.append(self.value())
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ',':
                self.i += 1
            elif self.i < len(self.s) and self.s[self.i] == ']':
                continue
            else:
                self.err('expected , or ] in flow sequence')


def _flow_balanced(s):
    depth = 0
    quote = None
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if quote == '"' and c == '\\':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in '"\'':
            quote = c
        elif c in '[{':
            depth += 1
        elif c in ']}':
            depth -= 1
        i += 1
    return depth <= 0 and quote is None


class _Parser:
    def __init__(self, lines):
        self.lines = lines
        self.pos = 0

    def err(self, msg, line=None):
        no = line.no if line else (self.lines[self.pos].no if self.pos < len(self.lines) else -1)
        raise YAMLError('line %d: %s' % (no, msg))

    def peek(self):
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def parse_node(self, indent):
        """Parse a block node whose lines are indented at least `indent`."""
        ln = self.peek()
        if ln is None or ln.indent < indent:
            return None
        if ln.text.startswith('- ') or ln.text == '-':
            return self.parse_seq(ln.indent)
        if self._is_map_line(ln.text):
            return self.parse_map(ln.indent)
        # a lone scalar (multi-line plain, flow or quoted)
        self.pos += 1
        return self.scalar_text(ln.text, ln, ln.indent)

    @staticmethod
    def _split_key(text):
        """Return (key, rest) if text is `key: rest` / `key:`, else None."""
        if text[:1] in '"\'':
            f = _Flow(text, 0)
            try:
                k = f.quoted()
            except YAMLError:
                return None
            rest = text[f.i:]
            if rest.startswith(':') and (len(rest) == 1 or rest[1] in ' \t'):
                return k, rest[1:].strip()
            return None
        if text[:1] in '[{':
            return None
        m = re.match(r'^([^#]*?):(\s|$)', text)
        if not m:
            return None
        key = m.group(1).strip()
        if key.startswith('? '):
            return None
        return key, text[m.end():].strip()

    def _is_map_line(self, text):
        return self._split_key(text) is not None

    def parse_map(self, indent):
        out = {}
        while True:
            ln = self.peek()
            if ln is None or ln.indent < indent:
                break
            if ln.indent > indent:
                self.err('bad indentation of a mapping entry', ln)
            if ln.text.startswith('- ') or ln.text == '-':
                break
            kv = self._split_key(ln.text)
            if kv is None:
                self.err('expected a mapping entry "key: value"', ln)
            key, rest = kv
            if key in out:
                self.err('duplicate key %r' % key, ln)
            self.pos += 1
            out[key] = self.value_after_indicator(rest, ln, indent, in_map=True)
        return out

    def value_after_indicator(self, rest, ln, indent, in_map):
        if rest == '' or rest.startswith('&') or rest.startswith('*'):
            if rest.startswith('&') or rest.startswith('*'):
                self.err('anchors and aliases are not supported', ln)
            nxt = self.peek()
            if nxt is None:
                return None
            if nxt.indent > indent:
                return self.parse_node(nxt.indent)
            if in_map and nxt.indent == indent and (nxt.text.startswith('- ') or nxt.text == '-'):
                # "key:\n- a\n- b" : a sequence at the same indentation as the key
                return self.parse_seq(indent)
            return None
        if rest[:1] in '|>':
            return self.block_scalar(rest, ln, indent)
        return self.scalar_text(rest, ln, indent)

    def scalar_text(self, text, ln, indent):
        if text.startswith('!!'):
            tag, _, text = text.partition(' ')
            v = self.scalar_text(text.strip(), ln, indent)
            if tag == '!!str':
                return v if isinstance(v, str) else ('' if v is None else (
                    str(v).lower() if isinstance(v, bool) else str(v)))
            if tag == '!!int':
                return int(v)
            return v
        if text.startswith('&') or text.startswith('*'):
            self.err('anchors and aliases are not supported', ln)
        if text[:1] in '[{"\'':
            buf = text
            while not _flow_balanced(buf) or (text[:1] in '"\'' and not self._quote_closed(buf)):
                nxt = self.peek()
                if nxt is None:
                    self.err('unterminated flow collection or quoted scalar', ln)
                buf += '\n' + nxt.raw.strip()
                self.pos += 1
            f = _Flow(buf, ln.no)
            v = f.value()
            f.ws()
            if f.i != len(f.s):
                self.err('unexpected text after value: %r' % f.s[f.i:], ln)
            return v
        # plain scalar, possibly continued on more-indented lines
        parts = [text]
        while True:
            nxt = self.peek()
            if nxt is None or nxt.indent <= indent:
                break
            if self._is_map_line(nxt.text) or nxt.text.startswith('- '):
                break
            parts.append(nxt.text)
            self.pos += 1
        if len(parts) > 1:
            return ' '.join(p.strip() for p in parts)
        return _resolve_plain(text)

    @staticmethod
    def _quote_closed(buf):
        try:
            f = _Flow(buf, 0)
            f.quoted()
            return True
        except YAMLError:
            return False

    def block_scalar(self, header, ln, indent):
        style = header[0]
        chomp = 'clip'
        explicit = None
        for c in header[1:].strip():
            if c == '-':
                chomp = 'strip'
            elif c == '+':
                chomp = 'keep'
            elif c.isdigit():
                explicit = int(c)
            else:
                self.err('bad block scalar header %r' % header, ln)
        # Block scalar content comes from raw lines (comments and blanks are content).
        raw_start = ln.raw_index + 1
        content = []
        block_indent = None if explicit is None else indent + explicit
        j = raw_start
        while j < len(self.raw_lines):
            r = self.raw_lines[j]
            if r.strip() == '':
                content.append('')
                j += 1
                continue
            ind = len(r) - len(r.lstrip(' '))
            if block_indent is None:
                if ind <= indent:
                    break
                block_indent = ind
            if ind < block_indent:
                break
            content.append(r[block_indent:])
            j += 1
        # skip parsed lines
        while self.pos < len(self.lines) and self.lines[self.pos].raw_index < j:
            self.pos += 1
        # trailing blank lines
        trailing = 0
        while content and content[-1] == '':
            content.pop()
            trailing += 1
        if style == '|':
            text = '\n'.join(content)
        else:
            text = ''
            prev_more = False
            for k, c in enumerate(content):
                more = c.startswith(' ') or c.startswith('\t')
                if k == 0:
                    text = c
                elif c == '':
                    text += '\n'
                elif more or prev_more or text.endswith('\n'):
                    text += ('\n' if not text.endswith('\n') or more or prev_more else '') + c
                else:
                    text += ' ' + c
                prev_more = more
        if not content:
            return '' if chomp != 'keep' else '\n' * trailing
        if chomp == 'strip':
            return text
        if chomp == 'clip':
            return text + '\n'
        return text + '\n' + '\n' * trailing

    def parse_seq(self, indent):
        out = []
        while True:
            ln = self.peek()
            if ln is None or ln.indent < indent:
                break
            if ln.indent > indent:
                self.err('bad indentation of a sequence entry', ln)
            if not (ln.text.startswith('- ') or ln.text == '-'):
                break
            rest = ln.text[1:].strip()
            if rest == '':
                self.pos += 1
                nxt = self.peek()
                if nxt is not None and nxt.indent > indent:
                    out.append(self.parse_node(nxt.indent))
                else:
                    out.append(None)
                continue
            # "- key: value" starts a mapping nested at the column of the key
            col = ln.indent + (len(ln.text) - len(ln.text[1:].lstrip()))
            if rest[:1] not in '[{' and (self._is_map_line(rest) or rest.startswith('- ')):
                # rewrite the current line as if the entry started on its own line
                ln.indent = col
                ln.text = rest
                out.append(self.parse_node(col))
                continue
            if rest[:1] in '|>':
                self.pos += 1
                out.append(self.block_scalar(rest, ln, indent))
                continue
            self.pos += 1
            out.append(self.scalar_text(rest, ln, indent))
        return out


def load_all(text):
    """Parse every document of a YAML stream; returns a list (empty documents skipped)."""
    if isinstance(text, bytes):
        text = text.decode('utf-8')
    if text.startswith('\ufeff'):
        text = text[1:]
    raw_lines = text.replace('\r\n', '\n').split('\n')
    docs = [[]]
    raw_docs = [[]]
    for r in raw_lines:
        if r.startswith('---') and r[3:4] in ('', ' ', '\t'):
            docs.append([])
            raw_docs.append([])
            rest = r[3:].strip()
            if rest and not rest.startswith('#'):
                raw_docs[-1].append(rest)
            continue
        if r.startswith('...') and r.strip() == '...':
            continue
        if r.startswith('%'):
            continue
        raw_docs[-1].append(r)
    results = []
    for raw in raw_docs:
        lines = []
        for idx, r in enumerate(raw):
            if '\t' in r[:len(r) - len(r.lstrip())]:
                raise YAMLError('line %d: tabs are not allowed for indentation' % (idx + 1))
            t = _strip_comment(r)
            if t.strip() == '':
                continue
            ind = len(t) - len(t.lstrip(' '))
            ln = _Line(ind, t.strip(), r, idx + 1)
            ln.raw_index = idx
            lines.append(ln)
        if not lines:
            continue
        p = _Parser(lines)
        p.raw_lines = raw
        v = p.parse_node(lines[0].indent)
        if p.pos < len(lines):
            p.err('unexpected content')
        results.append(v)
    return results


def load(text):
    docs = load_all(text)
    if not docs:
        return None
    if len(docs) > 1:
        raise YAMLError('expected one document, found %d' % len(docs))
    return docs[0]


def loads_json_or_yaml(body):
    """Kubernetes accepts JSON (a YAML subset) wherever YAML is accepted."""
    if isinstance(body, bytes):
        body = body.decode('utf-8')
    s = body.lstrip()
    if s.startswith('{') or s.startswith('['):
        try:
            return json.loads(body)
        except ValueError:
            pass
    return load(body)
