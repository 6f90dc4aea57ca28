using Osprey.Models;
using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>Attention, PSABlock, C2PSA and PSA: Ultralytics' formula, parameter counts by hand, the cast policy.</summary>
public class AttentionTests
{
    // A Conv block in eval mode, written out: batch_norm(conv2d(x)) with the block's state (act=False blocks only).
    static Tensor ConvBn(Dictionary<string, Tensor> state, string prefix, Tensor x, long padding, long groups) =>
        nn.functional.batch_norm(
            nn.functional.conv2d(x, state[prefix + ".conv.weight"], null, padding: new[] { padding, padding }, groups: groups),
            state[prefix + ".bn.running_mean"], state[prefix + ".bn.running_var"], state[prefix + ".bn.weight"],
            state[prefix + ".bn.bias"], training: false, eps: Conv.BatchNormEps);

    static void RandomiseBatchNorms(nn.Module module, long seed)
    {
        using var noGrad = no_grad();
        var generator = new Generator((ulong)seed);
        foreach (var (name, tensor) in module.state_dict())
        {
            if (name.EndsWith("running_mean", StringComparison.Ordinal) || name.EndsWith("bn.bias", StringComparison.Ordinal))
                tensor.copy_(randn(tensor.shape, generator: generator) * 0.2);
            else if (name.EndsWith("running_var", StringComparison.Ordinal) || name.EndsWith("bn.weight", StringComparison.Ordinal))
                tensor.copy_(rand(tensor.shape, generator: generator) + 0.5);
        }
    }

    [Fact]
    public void Fp32ForwardIsUltralyticsFormulaBitForBit()
    {
        manual_seed(3);
        using var attention = new Attention(128, 2);
        RandomiseBatchNorms(attention, 4);
        attention.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn(2, 128, 6, 5);
        var state = attention.state_dict();
        // Ultralytics: q, k, v = qkv(x).view(B, heads, 2·kd + hd, N).split([kd, kd, hd], 2); attn = softmax(qᵀk · scale);
        // proj((v @ attnᵀ).view(B, C, H, W) + pe(v.reshape(B, C, H, W))). heads 2, hd 64, kd 32.
        var qkv = ConvBn(state, "qkv", x, 0, 1).view(2, 2, 128, 30).split(new long[] { 32, 32, 64 }, 2);
        var attn = (qkv[0].transpose(-2, -1).matmul(qkv[1]) * Math.Pow(32, -0.5)).softmax(-1);
        var y = qkv[2].matmul(attn.transpose(-2, -1)).view(2, 128, 6, 5) + ConvBn(state, "pe", qkv[2].reshape(2, 128, 6, 5), 1, 128);
        var expected = ConvBn(state, "proj", y, 0, 1);
        Assert.True(attention.call(x).SameAs(expected));
        // qkv: Conv(128, 128 + 2·32·2 = 256, 1) 32768 + 512; proj: Conv(128, 128, 1) 16384 + 256; pe: Conv(128, 128, 3, g=128) 1152 + 256.
        Assert.Equal(33_280 + 16_640 + 1_408, attention.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void Bf16PolicyRunsMatmulsInBf16AndStaysCloseToFp32()
    {
        manual_seed(5);
        using var block = new C2PSA(128, 1);
        RandomiseBatchNorms(block, 6);
        block.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn(1, 128, 8, 8);
        var reference = block.call(x);
        var bf16 = new CastPolicy(ScalarType.BFloat16);
        foreach (var aware in block.modules().OfType<ICastPolicyAware>()) aware.Policy = bf16;
        var attentionOutputs = new List<ScalarType>();
        var hook = block.modules().OfType<Attention>().Single()
            .register_forward_hook((_, _, output) => { attentionOutputs.Add(output.dtype); return output; });
        var mixed = block.call(x);
        hook.remove();
        Assert.Equal(new[] { ScalarType.BFloat16 }, attentionOutputs);
        Assert.Equal(ScalarType.BFloat16, mixed.dtype);
        // bf16 keeps 8 significant bits (2^-9 relative per rounding); through ~10 layers a few tenths of a percent.
        double error = (mixed.to(ScalarType.Float32) - reference).norm().item<float>() / reference.norm().item<float>();
        Assert.InRange(error, 1e-5, 0.02);
        // CPU autocast does not list softmax: it runs in the input's dtype; matmul casts both operands.
        Assert.Equal(ScalarType.BFloat16, bf16.Softmax(randn(2, 3).to(ScalarType.BFloat16), -1).dtype);
        Assert.Equal(ScalarType.BFloat16, bf16.MatMul(randn(2, 3), randn(3, 2)).dtype);
        Assert.Equal(ScalarType.Float32, CastPolicy.Float32.MatMul(randn(2, 3), randn(3, 2)).dtype);
    }

    [Fact]
    public void Bf16BackwardGivesFp32GradientsToEveryParameter()
    {
        // A backward through C2PSA under bf16: master weights and their gradients stay fp32 and finite, and the gradients
        // stay close to the fp32 run's (the matmuls and the softmax take part in autograd through the casts). Eval-mode
        // BatchNorm (random statistics), as CastPolicyTests does: training-mode BN cancels every per-channel constant, so
        // some gradients are exactly 0 and only rounding is left of them.
        Dictionary<string, Tensor> Gradients(CastPolicy policy)
        {
            manual_seed(7);
            using var block = new C2PSA(128, 1);
            RandomiseBatchNorms(block, 9);
            block.eval();
            foreach (var aware in block.modules().OfType<ICastPolicyAware>()) aware.Policy = policy;
            var generator = new Generator(8);
            var x = randn(new long[] { 2, 128, 6, 6 }, generator: generator);
            var y = block.call(x);
            (y.to(ScalarType.Float32) * randn(y.shape, generator: generator)).sum().backward();
            return block.named_parameters().ToDictionary(p => p.name, p =>
            {
                Assert.Equal(ScalarType.Float32, p.parameter.dtype);
                return p.parameter.grad!.clone();
            });
        }
        using var scope = NewDisposeScope();
        var reference = Gradients(CastPolicy.Float32);
        var mixed = Gradients(new CastPolicy(ScalarType.BFloat16));
        Assert.Equal(reference.Keys, mixed.Keys);
        Assert.Contains("m.0.attn.qkv.conv.weight", mixed.Keys);
        foreach (var (name, gradient) in mixed)
        {
            Assert.Equal(ScalarType.Float32, gradient.dtype);
            Assert.True(gradient.isfinite().all().item<bool>(), name);
            double error = (gradient - reference[name]).norm().item<float>(), norm = reference[name].norm().item<float>();
            Assert.True(error <= 0.05 * norm + 1e-6, $"{name}: |Δg| {error} against |g| {norm}");
        }
    }

    [Fact]
    public void ParameterCountsByHand()
    {
        // PSABlock(128, heads 2): attention 51,328 (above) + ffn Conv(128, 256, 1) 32768 + 512, Conv(256, 128, 1) 32768 + 256.
        using var psaBlock = new PSABlock(128, 0.5, 2);
        Assert.Equal(51_328 + 33_280 + 33_024, psaBlock.parameters().Sum(p => p.numel()));
        // C2PSA(256, n=1): cv1 Conv(256, 256, 1) 65536 + 512, cv2 the same, one PSABlock(128): Ultralytics' yolo11n layer 10.
        using var c2psa = new C2PSA(256, 1);
        Assert.Equal(66_048 * 2 + 117_632, c2psa.parameters().Sum(p => p.numel()));
        Assert.Equal(249_728, c2psa.parameters().Sum(p => p.numel()));
        // PSA(256): the same layers with attn and ffn inline (Ultralytics' yolov10n layer 10: 249,728).
        using var psa = new PSA(256);
        Assert.Equal(249_728, psa.parameters().Sum(p => p.numel()));
        Assert.Contains("attn.qkv.conv.weight", psa.state_dict().Keys);
        Assert.Contains("ffn.1.conv.weight", psa.state_dict().Keys);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Assert.Equal(new long[] { 2, 256, 5, 7 }, psa.call(randn(2, 256, 5, 7)).shape);
        Assert.Equal(new long[] { 2, 256, 5, 7 }, c2psa.call(randn(2, 256, 5, 7)).shape);
    }
}
