"""PyTorch and Hugging Face baselines for `cargo bench --bench lm`.

Loads the GPT that the bench wrote (labrun's `model.json` + `weights.safetensors`) into
transformers' GPT2LMHeadModel — the same architecture: learned positions, pre-LayerNorm,
exact GELU, untied output layer — checks that both give the same logits, then measures,
on the CPU with the given threads, either training (eager PyTorch, AdamW, clipping) or
generation (`model.generate`, greedy, with its KV cache). Prints one JSON object.
Exits 3 when PyTorch or transformers is missing.

usage: torch_gpt.py MODEL_DIR train BATCH SEQ STEPS THREADS
       torch_gpt.py MODEL_DIR generate BATCH PROMPT_LEN NEW_TOKENS REPEATS THREADS
"""
import json
import resource
import sys
import time

try:
    import torch
    from safetensors.torch import load_file
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError as e:
    print(f"missing: {e}", file=sys.stderr)
    sys.exit(3)

model_dir, mode = sys.argv[1], sys.argv[2]
nums = [int(a) for a in sys.argv[3:]]
torch.set_num_threads(nums[-1])
torch.manual_seed(0)

spec = json.load(open(f"{model_dir}/model.json"))
w = load_file(f"{model_dir}/weights.safetensors")
conf = GPT2Config(
    vocab_size=spec["vocab"], n_positions=spec["context"], n_embd=spec["width"], n_layer=spec["layers"],
    n_head=spec["heads"], activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    layer_norm_epsilon=1e-5, tie_word_embeddings=False, pad_token_id=0, eos_token_id=None, bos_token_id=None,
)
model = GPT2LMHeadModel(conf)
sd = {"transformer.wte.weight": w["wte"], "transformer.wpe.weight": w["wpe"],
      "transformer.ln_f.weight": w["lnf.g"], "transformer.ln_f.bias": w["lnf.b"], "lm_head.weight": w["head.w"].T.contiguous()}
for i in range(spec["layers"]):
    p, h = f"transformer.h.{i}.", f"h{i}."
    sd.update({p + "ln_1.weight": w[h + "ln1.g"], p + "ln_1.bias": w[h + "ln1.b"],
               p + "attn.c_attn.weight": w[h + "attn.qkv.w"], p + "attn.c_attn.bias": w[h + "attn.qkv.b"],
               p + "attn.c_proj.weight": w[h + "attn.proj.w"], p + "attn.c_proj.bias": w[h + "attn.proj.b"],
               p + "ln_2.weight": w[h + "ln2.g"], p + "ln_2.bias": w[h + "ln2.b"],
               p + "mlp.c_fc.weight": w[h + "mlp.fc.w"], p + "mlp.c_fc.bias": w[h + "mlp.fc.b"],
               p + "mlp.c_proj.weight": w[h + "mlp.proj.w"], p + "mlp.c_proj.bias": w[h + "mlp.proj.b"]})
missing, unexpected = model.load_state_dict(sd, strict=False)
assert not unexpected and all("attn.bias" in m or "masked_bias" in m for m in missing), (missing, unexpected)

check = json.load(open(f"{model_dir}/check.json"))
with torch.no_grad():
    logits = model(torch.tensor([check["ids"]])).logits[0].flatten()
err = (logits - torch.tensor(check["logits"])).abs().max().item()
out = {"torch": torch.__version__, "max_abs_logit_diff": err}

if mode == "train":
    batch, seq, steps = nums[0], nums[1], nums[2]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, spec["vocab"], (steps + 5, batch, seq + 1), generator=g)

    def step(x):
        opt.zero_grad(set_to_none=True)
        logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, spec["vocab"]), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for i in range(5):
        step(data[i])
    t = time.perf_counter()
    for i in range(steps):
        step(data[5 + i])
    out["tokens_per_second"] = batch * seq * steps / (time.perf_counter() - t)
else:
    batch, prompt, new, reps = nums[0], nums[1], nums[2], nums[3]
    model.eval()
    ids = torch.randint(1, spec["vocab"], (batch, prompt), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)

    def gen():
        return model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new, min_new_tokens=new,
                              pad_token_id=0, use_cache=True)

    with torch.no_grad():
        gen()
        t = time.perf_counter()
        for _ in range(reps):
            gen()
    out["tokens_per_second"] = batch * new * reps / (time.perf_counter() - t)
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
