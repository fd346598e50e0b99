#!/usr/bin/env python3
"""scripts/check-module-cycles.py: fails when the gateway's modules import each other in a
cycle (issue 21: the relay and the control tap used to). Follows every `crate::` and `super::`
path in gateway/src outside comments and test modules, resolves it to the module file it
names, and looks for strongly connected components (Tarjan). A module using its own
submodules, or a submodule its parent, is not a cycle. Prints the cycles and exits 1, or
prints "no import cycle" and exits 0. Run from the repository root."""

import os
import re
import sys

root='gateway/src'
mods={}
for dp,dn,fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs') or dp.endswith('/bin'): continue
        p=os.path.join(dp,f)
        rel=os.path.relpath(p,root)[:-3]
        m=rel.replace('/mod','').replace('/','::')
        if m=='lib': m='crate'
        mods[m]=p
def resolve(path):
    parts=path.split('::')
    for i in range(len(parts),0,-1):
        c='::'.join(parts[:i])
        if c in mods: return c
    return None
edges={m:set() for m in mods}
for m,p in mods.items():
    s=open(p).read()
    # drop test modules
    s=re.split(r'#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod tests',s)[0]
    s=re.sub(r'//[^\n]*','',s)
    for ref in re.findall(r'crate::([a-z_0-9:]+)',s):
        t=resolve(ref.rstrip(':'))
        if t and t!=m and not t.startswith(m+'::') and not m.startswith(t+'::'):
            edges[m].add(t)
    # super:: references
    parent='::'.join(m.split('::')[:-1])
    for ref in re.findall(r'\bsuper::([a-z_0-9:]+)',s):
        full=(parent+'::'+ref) if parent else ref
        t=resolve(full.rstrip(':'))
        if t and t!=m and not m.startswith(t+'::'):
            edges[m].add(t)
# Tarjan SCC
idx={};low={};st=[];on=set();sccs=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: sccs.append(comp)
sys.setrecursionlimit(10000)
for v in mods:
    if v not in idx: sc(v)
if sccs:
    for comp in sccs:
        print("import cycle: " + " -> ".join(sorted(comp)))
    sys.exit(1)
print("gateway/src: no import cycle between modules")
