// The registry of the seed's models (`affect models`, `affect pull`, `ModelStore`). Edit the JSON here; entries are
// checked by RegistryTests. Digests: `git-blob-sha1:<40 hex>` (GitHub's blob id, "blob <size>\0" + bytes) or
// `sha256:<64 hex>`; null where no digest can be known offline (then `pull` records the sha256 it saw).

extension ModelRegistry {
    /// The committed registry, as JSON.
    public static let builtinJSON = #"""
{
 "format": 1,
 "models": [
  {
   "name": "enet_b0_8_best_afew",
   "task": "face expression, 8 classes (AffectNet, tuned on AFEW)",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b0_8_best_afew.pt",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/enet_b0_8_best_afew.pt",
     "digest": "git-blob-sha1:9540c8beff661f1c2fca16de63b530cce24bb17d"
    }
   ],
   "convert": "enet_b0_8_best_afew.pt"
  },
  {
   "name": "enet_b0_8_best_vgaf",
   "task": "face expression, 8 classes (AffectNet, tuned on VGAF)",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b0_8_best_vgaf.pt",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/enet_b0_8_best_vgaf.pt",
     "digest": "git-blob-sha1:7219cfb037209b253ea8b81cf969e60a00e9181c"
    }
   ],
   "convert": "enet_b0_8_best_vgaf.pt"
  },
  {
   "name": "enet_b0_8_va_mtl",
   "task": "face expression (8 classes) + valence/arousal",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b0_8_va_mtl.pt",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/enet_b0_8_va_mtl.pt",
     "digest": "git-blob-sha1:b7223bd1ab092a1b5a42bc04a5f4fbfe4d9f8b9b"
    }
   ],
   "convert": "enet_b0_8_va_mtl.pt"
  },
  {
   "name": "enet_b2_7",
   "task": "face expression, 7 classes",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b2_7.pt",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/enet_b2_7.pt",
     "digest": "git-blob-sha1:5a8ccbb17913461296003be726a22b6fc40d602b"
    }
   ],
   "convert": "enet_b2_7.pt"
  },
  {
   "name": "enet_b2_8",
   "task": "face expression, 8 classes",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b2_8.pt",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/enet_b2_8.pt",
     "digest": "git-blob-sha1:eed81e6368877e89f8a99cfabadae7c3ddc3a949"
    }
   ],
   "convert": "enet_b2_8.pt"
  },
  {
   "name": "mbf_va_mtl",
   "task": "face expression (8 classes) + valence/arousal",
   "arch": "mobilefacenet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "mbf_va_mtl.pt",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/mbf_va_mtl.pt",
     "digest": "git-blob-sha1:522bdabca7c655a7abde9cfca17e3dfcceadf9a0"
    }
   ],
   "convert": "mbf_va_mtl.pt"
  },
  {
   "name": "mobilevit_va_mtl",
   "task": "face expression (8 classes) + valence/arousal",
   "arch": "mobilevit",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "mobilevit_va_mtl.pt",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/mobilevit_va_mtl.pt",
     "digest": "git-blob-sha1:d648cb1a20a5b1ab0af64192ec9be39e5cdd3961"
    }
   ],
   "convert": "mobilevit_va_mtl.pt"
  },
  {
   "name": "enet_b0_8_best_afew_onnx",
   "task": "face expression, 8 classes (AffectNet, tuned on AFEW) (ONNX export)",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b0_8_best_afew.onnx",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/onnx/enet_b0_8_best_afew.onnx",
     "digest": "git-blob-sha1:d87faf71e8756d68c701ffd88b4cde4be460f57d"
    }
   ],
   "convert": "enet_b0_8_best_afew.onnx"
  },
  {
   "name": "enet_b0_8_best_vgaf_onnx",
   "task": "face expression, 8 classes (AffectNet, tuned on VGAF) (ONNX export)",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b0_8_best_vgaf.onnx",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/onnx/enet_b0_8_best_vgaf.onnx",
     "digest": "git-blob-sha1:49772db4e87ee6df57087fba131832a959e5c64d"
    }
   ],
   "convert": "enet_b0_8_best_vgaf.onnx"
  },
  {
   "name": "enet_b0_8_va_mtl_onnx",
   "task": "face expression (8 classes) + valence/arousal (ONNX export)",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b0_8_va_mtl.onnx",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/onnx/enet_b0_8_va_mtl.onnx",
     "digest": "git-blob-sha1:7ce9d6dd5b82b260bc19bfe7822a6ffa1abb6011"
    }
   ],
   "convert": "enet_b0_8_va_mtl.onnx"
  },
  {
   "name": "enet_b2_7_onnx",
   "task": "face expression, 7 classes (ONNX export)",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b2_7.onnx",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/onnx/enet_b2_7.onnx",
     "digest": "git-blob-sha1:cdd6a6070b72ed2e59e15e810ae0ecdbcb0f7626"
    }
   ],
   "convert": "enet_b2_7.onnx"
  },
  {
   "name": "enet_b2_8_onnx",
   "task": "face expression, 8 classes (ONNX export)",
   "arch": "efficientnet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "enet_b2_8.onnx",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/onnx/enet_b2_8.onnx",
     "digest": "git-blob-sha1:a7cb612cbab1ce3d50dd52e57285fb2c7ea6d0d9"
    }
   ],
   "convert": "enet_b2_8.onnx"
  },
  {
   "name": "mbf_va_mtl_onnx",
   "task": "face expression (8 classes) + valence/arousal (ONNX export)",
   "arch": "mobilefacenet",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "mbf_va_mtl.onnx",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/onnx/mbf_va_mtl.onnx",
     "digest": "git-blob-sha1:194db927ec135679e5cd0a267c5605e2e9d68e7e"
    }
   ],
   "convert": "mbf_va_mtl.onnx"
  },
  {
   "name": "mobilevit_va_mtl_onnx",
   "task": "face expression (8 classes) + valence/arousal (ONNX export)",
   "arch": "mobilevit",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "mobilevit_va_mtl.onnx",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/affectnet_emotions/onnx/mobilevit_va_mtl.onnx",
     "digest": "git-blob-sha1:bed5781a1af9924536638ac3786603e124ee900e"
    }
   ],
   "convert": "mobilevit_va_mtl.onnx"
  },
  {
   "name": "engagement_single_attention",
   "task": "engagement classification (attention over a clip's face features)",
   "arch": "engagement",
   "licence": "Apache-2.0",
   "repository": "https://github.com/sb-ai-lab/EmotiEffLib",
   "revision": "f1df0e8548c666d268826e50b7de107fd5553e9d",
   "files": [
    {
     "path": "engagement_single_attention.h5",
     "url": "https://github.com/sb-ai-lab/EmotiEffLib/raw/f1df0e8548c666d268826e50b7de107fd5553e9d/models/engagement_classification/engagement_single_attention.h5",
     "digest": "git-blob-sha1:25921a298a0ea8cd6761960ef7233aae071d7ec8"
    }
   ],
   "convert": "engagement_single_attention.h5",
   "note": "reads EfficientNet-B0 features (1280 per frame, e.g. enet_b0_8_best_vgaf): affect analyze --engagement-model"
  },
  {
   "name": "wav2vec2-base-960h",
   "task": "speech: 50 Hz embeddings and English CTC transcription",
   "arch": "wav2vec2",
   "licence": "Apache-2.0",
   "repository": "https://huggingface.co/facebook/wav2vec2-base-960h",
   "revision": "22aad52d435eb6dbaf354bdad9b0da84ce7d6156",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/facebook/wav2vec2-base-960h/resolve/22aad52d435eb6dbaf354bdad9b0da84ce7d6156/config.json",
     "digest": null
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/facebook/wav2vec2-base-960h/resolve/22aad52d435eb6dbaf354bdad9b0da84ce7d6156/preprocessor_config.json",
     "digest": null
    },
    {
     "path": "vocab.json",
     "url": "https://huggingface.co/facebook/wav2vec2-base-960h/resolve/22aad52d435eb6dbaf354bdad9b0da84ce7d6156/vocab.json",
     "digest": null
    },
    {
     "path": "tokenizer_config.json",
     "url": "https://huggingface.co/facebook/wav2vec2-base-960h/resolve/22aad52d435eb6dbaf354bdad9b0da84ce7d6156/tokenizer_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "special_tokens_map.json",
     "url": "https://huggingface.co/facebook/wav2vec2-base-960h/resolve/22aad52d435eb6dbaf354bdad9b0da84ce7d6156/special_tokens_map.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/facebook/wav2vec2-base-960h/resolve/22aad52d435eb6dbaf354bdad9b0da84ce7d6156/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/facebook/wav2vec2-base-960h/resolve/22aad52d435eb6dbaf354bdad9b0da84ce7d6156/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "revision pinned by a commit id taken from public code that pins it (not checked from a networked machine); Hugging Face serves no digest we know offline, so `affect pull` records the sha256 it saw"
  },
  {
   "name": "hubert-large-ls960-ft",
   "task": "speech: 50 Hz embeddings and English CTC transcription",
   "arch": "hubert",
   "licence": "Apache-2.0",
   "repository": "https://huggingface.co/facebook/hubert-large-ls960-ft",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/facebook/hubert-large-ls960-ft/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/facebook/hubert-large-ls960-ft/resolve/main/preprocessor_config.json",
     "digest": null
    },
    {
     "path": "vocab.json",
     "url": "https://huggingface.co/facebook/hubert-large-ls960-ft/resolve/main/vocab.json",
     "digest": null
    },
    {
     "path": "tokenizer_config.json",
     "url": "https://huggingface.co/facebook/hubert-large-ls960-ft/resolve/main/tokenizer_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "special_tokens_map.json",
     "url": "https://huggingface.co/facebook/hubert-large-ls960-ft/resolve/main/special_tokens_map.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/facebook/hubert-large-ls960-ft/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/facebook/hubert-large-ls960-ft/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "roberta-base-go_emotions",
   "task": "text emotions, 28 GoEmotions labels (sigmoid)",
   "arch": "roberta",
   "licence": "MIT",
   "repository": "https://huggingface.co/SamLowe/roberta-base-go_emotions",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/tokenizer.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "vocab.json",
     "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/vocab.json",
     "digest": null
    },
    {
     "path": "merges.txt",
     "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/merges.txt",
     "digest": null
    },
    {
     "path": "tokenizer_config.json",
     "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/tokenizer_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "special_tokens_map.json",
     "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/special_tokens_map.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/SamLowe/roberta-base-go_emotions/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "all-MiniLM-L6-v2",
   "task": "text: sentence embeddings (384)",
   "arch": "bert",
   "licence": "Apache-2.0",
   "repository": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
   "revision": "c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/config.json",
     "digest": null
    },
    {
     "path": "modules.json",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/modules.json",
     "digest": null
    },
    {
     "path": "1_Pooling/config.json",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/1_Pooling/config.json",
     "digest": null
    },
    {
     "path": "sentence_bert_config.json",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/sentence_bert_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/tokenizer.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "vocab.txt",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/vocab.txt",
     "digest": null
    },
    {
     "path": "tokenizer_config.json",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/tokenizer_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "special_tokens_map.json",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/special_tokens_map.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/c9745ed1d9f207416be6d2e6f8de32d1f16199bf/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "revision pinned by a commit id taken from public code that pins it (not checked from a networked machine); Hugging Face serves no digest we know offline, so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-tiny",
   "task": "speech recognition (OpenAI Whisper tiny, multilingual: 99 languages, transcribe or translate)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-tiny",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-tiny/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-tiny/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-tiny/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-tiny/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-tiny/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-tiny/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-tiny.en",
   "task": "speech recognition (OpenAI Whisper tiny, English-only)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-tiny.en",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-tiny.en/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-tiny.en/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-tiny.en/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-tiny.en/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-tiny.en/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-tiny.en/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-base",
   "task": "speech recognition (OpenAI Whisper base, multilingual: 99 languages, transcribe or translate)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-base",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-base/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-base/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-base/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-base/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-base/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-base/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-base.en",
   "task": "speech recognition (OpenAI Whisper base, English-only)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-base.en",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-base.en/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-base.en/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-base.en/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-base.en/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-base.en/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-base.en/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-small",
   "task": "speech recognition (OpenAI Whisper small, multilingual: 99 languages, transcribe or translate)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-small",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-small/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-small/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-small/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-small/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-small/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-small/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-small.en",
   "task": "speech recognition (OpenAI Whisper small, English-only)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-small.en",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-small.en/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-small.en/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-small.en/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-small.en/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-small.en/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-small.en/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-medium",
   "task": "speech recognition (OpenAI Whisper medium, multilingual: 99 languages, transcribe or translate)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-medium",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-medium/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-medium/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-medium/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-medium/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-medium/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-medium/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  },
  {
   "name": "whisper-medium.en",
   "task": "speech recognition (OpenAI Whisper medium, English-only)",
   "arch": "whisper",
   "licence": "MIT",
   "repository": "https://huggingface.co/openai/whisper-medium.en",
   "revision": "main",
   "files": [
    {
     "path": "config.json",
     "url": "https://huggingface.co/openai/whisper-medium.en/resolve/main/config.json",
     "digest": null
    },
    {
     "path": "tokenizer.json",
     "url": "https://huggingface.co/openai/whisper-medium.en/resolve/main/tokenizer.json",
     "digest": null
    },
    {
     "path": "generation_config.json",
     "url": "https://huggingface.co/openai/whisper-medium.en/resolve/main/generation_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "preprocessor_config.json",
     "url": "https://huggingface.co/openai/whisper-medium.en/resolve/main/preprocessor_config.json",
     "digest": null,
     "optional": true
    },
    {
     "path": "model.safetensors",
     "url": "https://huggingface.co/openai/whisper-medium.en/resolve/main/model.safetensors",
     "digest": null,
     "alternatives": [
      {
       "path": "pytorch_model.bin",
       "url": "https://huggingface.co/openai/whisper-medium.en/resolve/main/pytorch_model.bin"
      }
     ]
    }
   ],
   "convert": ".",
   "note": "no commit id known offline: the revision is `main` (not a pin), so `affect pull` records the sha256 it saw"
  }
 ]
}
"""#
}
