"""Paper D: the associated-memory network (memory selection, label embeddings, the model).

Selection (:mod:`tfner.memory.selection`): the ``n`` memory sentences of each sentence by POS
edit distance or entity-category distance, cached. Label embeddings
(:mod:`tfner.memory.label_embeddings`): the ``[num_tags, 304]`` table (averaged word vectors of
each type's entities + one-hot BIOS position) and the word vectors behind it.
"""

from tfner.memory.label_embeddings import (
    PAPER_LABEL_EMBEDDING_DIM,
    PAPER_WORD_VECTOR_DIM,
    build_label_embeddings,
    entity_strings,
    entity_type_vectors,
    entity_vector,
    load_word_vectors,
    paper_label_embeddings,
    position_prefixes,
    train_word_vectors,
)
from tfner.memory.selection import (
    METHODS,
    PAPER_NUM_MEMORIES,
    as_category_matrix,
    category_matrix,
    encode_pos_sequences,
    pos_edit_distances,
    pos_sequences,
    pos_tags,
    select_by_category_distance,
    select_by_pos_edit_distance,
    select_memories,
    selection_cache_dir,
    sentence_category_sets,
    tag_texts,
)

__all__ = [
    "METHODS",
    "PAPER_LABEL_EMBEDDING_DIM",
    "PAPER_NUM_MEMORIES",
    "PAPER_WORD_VECTOR_DIM",
    "as_category_matrix",
    "build_label_embeddings",
    "category_matrix",
    "encode_pos_sequences",
    "entity_strings",
    "entity_type_vectors",
    "entity_vector",
    "load_word_vectors",
    "paper_label_embeddings",
    "pos_edit_distances",
    "pos_sequences",
    "pos_tags",
    "position_prefixes",
    "select_by_category_distance",
    "select_by_pos_edit_distance",
    "select_memories",
    "selection_cache_dir",
    "sentence_category_sets",
    "tag_texts",
    "train_word_vectors",
]
