"""Corpus loaders: a root folder in, a :class:`~sonotype.corpora.base.Manifest` of labelled, grouped clips out.

One module per corpus (its layout, naming, licence and download); the table of names is
:mod:`sonotype.corpora.registry`.
"""
