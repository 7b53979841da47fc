"""Fine-tuning a backbone into a classifier people deploy (`dinolab finetune`, `predict`).

  classifier  the Classifier (backbone + linear head on CLS / CLS + mean patch) and its file
  lr_decay    layer-wise lr decay param groups (ViT blocks, ResNet stages)
  mixup       mixup / cutmix with label-smoothed soft targets
  schedule    warm-up + cosine lr, linear-then-full
  data        labelled folders, DeiT augmentation, resumable loaders
  evaluate    val top-1 / top-5 / confusion matrix and the run's pictures
  loop        `run_finetune`: the epoch loop, validation, the weight EMA
  run_files   the run directory's files: checkpoint and resume rule, metrics, exports, summary
  predict     class and probability per image from a fine-tuned classifier

A higher layer, like train/ and eval/: it imports models, data, config, train and eval helpers.
"""
