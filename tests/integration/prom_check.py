#!/usr/bin/env python3
"""prom_check.py FILE - strict check of the Prometheus text exposition
format (version 0.0.4), for .info/metrics (tests/integration/t_observability.sh).

Checks what a Prometheus server would refuse and what its linters warn
about that would mislead a dashboard: line syntax (names, labels, escapes,
values), one HELP and one TYPE per family placed before its samples, each
family's samples together, no duplicate series, and for histograms:
buckets in increasing `le` order with non-decreasing counts, a +Inf bucket
equal to _count, and a _sum; and the naming conventions promtool lints:
counters end in _total and nothing else does, no abbreviated or non-base
units (_ms, _us, _pct, _percent, _milliseconds...).  Prints "ok FAMILIES SAMPLES" or one line per
problem (exit 1).  Written here rather than using promtool, which Debian
ships only inside the whole prometheus server package.
"""
import math
import re
import sys

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
SAMPLE = re.compile(r'^(' + NAME + r')(\{(.*)\})?[ \t]+(\S+)([ \t]+-?[0-9]+)?$')
LABEL_PAIR = re.compile(r'(' + LABEL + r')="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
NON_BASE_UNITS = ('ms', 'us', 'ns', 'sec', 'secs', 'pct', 'percent', 'milliseconds',
                  'microseconds', 'nanoseconds', 'minutes', 'hours', 'days', 'kb', 'mb', 'gb')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}


def parse_value(text):
    if text in ('+Inf', 'Inf'):
        return math.inf
    if text == '-Inf':
        return -math.inf
    if text == 'NaN':
        return math.nan
    if not re.match(r'^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$', text):
        raise ValueError(text)
    return float(text)


def parse_labels(text):
    labels = {}
    pos = 0
    while pos < len(text):
        m = LABEL_PAIR.match(text, pos)
        if not m:
            raise ValueError('bad label syntax at %r' % text[pos:])
        if m.group(1) in labels:
            raise ValueError('label %s twice' % m.group(1))
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def family_of(name, types):
    for suffix in ('_bucket', '_sum', '_count'):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in ('histogram', 'summary'):
            return base
    return name


def main(path):
    errors = []
    types, helps, done, series = {}, {}, set(), set()
    hist = {}      # (family, labels without le) -> {'buckets': [(le, v)], 'sum', 'count'}
    current = None
    samples = 0
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    for no, line in enumerate(lines, 1):
        def bad(msg):
            errors.append('%s:%d: %s: %s' % (path, no, msg, line))
        if line.strip() == '':
            continue
        if line.startswith('#'):
            m = re.match(r'^#[ \t]+(HELP|TYPE)[ \t]+(' + NAME + r')(?:[ \t]+(.*))?$', line)
            if not m:
                continue            # a plain comment
            kind, name, rest = m.group(1), m.group(2), m.group(3) or ''
            if name in done:
                bad('%s after the family ended' % kind)
            if kind == 'TYPE':
                if rest not in TYPES:
                    bad('unknown type')
                if name in types:
                    bad('second TYPE')
                if rest == 'counter' and not name.endswith('_total'):
                    bad('counter without the _total suffix')
                if rest != 'counter' and name.endswith('_total'):
                    bad('_total suffix on a %s' % rest)
                for unit in NON_BASE_UNITS:
                    if ('_' + unit + '_') in name + '_':
                        bad('unit %s in the name: use seconds, bytes or a ratio' % unit)
                if current == name:
                    bad('TYPE after samples')
                types[name] = rest
            else:
                if name in helps:
                    bad('second HELP')
                if re.search(r'\\[^\\n]', rest):
                    bad('bad escape in HELP')
                helps[name] = rest
            if current is not None and current != name:
                done.add(current)
                current = None
            continue
        m = SAMPLE.match(line)
        if not m:
            bad('not a sample line')
            continue
        name, labels_text, value_text = m.group(1), m.group(3) or '', m.group(4)
        try:
            labels = parse_labels(labels_text)
            value = parse_value(value_text)
        except ValueError as e:
            bad(str(e))
            continue
        samples += 1
        fam = family_of(name, types)
        if fam in done:
            bad('family %s split' % fam)
        if current is not None and current != fam:
            done.add(current)
        current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            bad('duplicate series')
        series.add(key)
        t = types.get(fam, 'untyped')
        if t == 'counter' and value < 0:
            bad('negative counter')
        if t == 'histogram':
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != 'le'))
            h = hist.setdefault((fam, rest), {'buckets': [], 'sum': None, 'count': None})
            if name == fam + '_bucket':
                if 'le' not in labels:
                    bad('bucket without le')
                    continue
                try:
                    h['buckets'].append((parse_value(labels['le']), value))
                except ValueError:
                    bad('bad le')
            elif name == fam + '_sum':
                h['sum'] = value
            elif name == fam + '_count':
                h['count'] = value
            else:
                bad('histogram sample that is not _bucket, _sum or _count')
    for (fam, rest), h in hist.items():
        where = '%s%s' % (fam, dict(rest))
        les = [le for le, _ in h['buckets']]
        counts = [v for _, v in h['buckets']]
        if les != sorted(les) or len(set(les)) != len(les):
            errors.append('%s: le not increasing' % where)
        if counts != sorted(counts):
            errors.append('%s: bucket counts decrease' % where)
        if not les or les[-1] != math.inf:
            errors.append('%s: no +Inf bucket' % where)
        elif h['count'] != counts[-1]:
            errors.append('%s: +Inf bucket %s != _count %s' % (where, counts[-1], h['count']))
        if h['sum'] is None:
            errors.append('%s: no _sum' % where)
    for e in errors:
        print(e)
    if errors:
        return 1
    print('ok %d %d' % (len(types), samples))
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 2:
        print('usage: prom_check.py FILE', file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
