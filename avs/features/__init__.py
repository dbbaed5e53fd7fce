"""Features: the text side of LAFF (tokenizer, vocabularies, word2vec, CLIP tokens, precomputed vectors,
featurized batches), caption datasets, and importers of pre-extracted video features into a store."""
