#!/usr/bin/env python3
"""The public API as the headers declare it: every NB_API function with its
return type and parameters, parsed from include/nabla/*.h.

Used by gen_api_null_test.py, which writes a call of every function with
NULL arguments (check_symbols.py, the symbols test, makes sure these
declarations are exactly what the library exports).
"""
import glob
import os
import re

_DECL = re.compile(r'NB_API\s+([^;{}()]*?)\b(nb_\w+)\s*\(([^()]*)\)')


class Param:
    def __init__(self, text):
        text = ' '.join(text.split())
        self.text = text
        self.array = None
        m = re.match(r'^(.*?)\b(\w+)\s*\[(\d+)\]$', text)
        if m:
            self.type, self.name, self.array = m.group(1).strip(), m.group(2), int(m.group(3))
        else:
            m = re.match(r'^(.*?[\s*])(\w+)$', text)
            self.type, self.name = m.group(1).strip(), m.group(2)
        self.type = re.sub(r'\s*\*', ' *', self.type).replace('* *', '**').strip()

    @property
    def is_pointer(self):
        return self.array is not None or '*' in self.type

    def c_type(self):
        """The type of a local variable that can hold the argument."""
        if self.array is not None:
            return self.type + ' *'
        return self.type


class Function:
    def __init__(self, header, ret, name, params):
        self.header = header
        self.ret = ' '.join(ret.split())
        self.ret = re.sub(r'\s*\*', ' *', self.ret).strip()
        self.name = name
        params = params.strip()
        self.variadic = params.endswith('...')
        if self.variadic:
            params = params[:params.rindex(',')] if ',' in params else ''
        self.params = [] if params in ('', 'void') else \
            [Param(p) for p in params.split(',')]


def parse(include_dir):
    """Every NB_API function declared in include_dir/*.h, in header order."""
    functions = []
    for path in sorted(glob.glob(os.path.join(include_dir, '*.h'))):
        # dist.h belongs to nabla_dist, which is built only with MPI.
        if os.path.basename(path) == 'dist.h':
            continue
        with open(path) as f:
            text = f.read()
        text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
        text = re.sub(r'//[^\n]*', ' ', text)
        for m in _DECL.finditer(text):
            functions.append(Function(os.path.basename(path), m.group(1),
                                      m.group(2), m.group(3)))
    return functions
