"""Pretrained encoders: BERT/ALBERT checkpoints as keras-hub backbones, and the encoder layers.

Example:
>>> from tfner.encoders import load_encoder, default_encoder_path
>>> bundle = load_encoder(default_encoder_path())
>>> encoder = bundle.char_encoder()
>>> encoder.max_length
510
"""

from tfner.encoders.backbones import AlbertEncoderBackbone
from tfner.encoders.backbones import BertEncoderBackbone
from tfner.encoders.checkpoints import EncoderFileError
from tfner.encoders.download import EncoderDownloadError
from tfner.encoders.download import download_default_encoder
from tfner.encoders.layers import PretrainedCharEncoder
from tfner.encoders.layers import load_word2vec_embeddings
from tfner.encoders.loading import DEFAULT_ENCODER_NAME
from tfner.encoders.loading import PAPER_HUB_IDS
from tfner.encoders.loading import char_embedding_matrix
from tfner.encoders.loading import EncoderBundle
from tfner.encoders.loading import HubUnavailableError
from tfner.encoders.loading import default_encoder_path
from tfner.encoders.loading import load_encoder
from tfner.encoders.loading import param_count
from tfner.encoders.loading import special_token_ids
from tfner.encoders.loading import truncate_backbone

__all__ = [
    "AlbertEncoderBackbone",
    "BertEncoderBackbone",
    "DEFAULT_ENCODER_NAME",
    "EncoderBundle",
    "EncoderDownloadError",
    "EncoderFileError",
    "HubUnavailableError",
    "PAPER_HUB_IDS",
    "PretrainedCharEncoder",
    "char_embedding_matrix",
    "default_encoder_path",
    "download_default_encoder",
    "load_encoder",
    "load_word2vec_embeddings",
    "param_count",
    "special_token_ids",
    "truncate_backbone",
]
