using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// Osprey's own autocast (TorchSharp has none): what a <see cref="DetectionModel"/> computes in. Every convolution
/// casts its input and its weight (and bias) to <see cref="ComputeType"/> on the fly, so the parameters stay fp32
/// master weights and autograd returns fp32 gradients through the casts; BatchNorm gets the low-precision input with
/// its fp32 affine parameters and fp32 running statistics (libtorch's batch_norm accepts that mix on the CPU and on
/// CUDA; it accumulates the batch statistics in fp32); SiLU, add, concat, split, max-pool and upsample keep the dtype
/// they are given; the head's maps are cast back to fp32 before the loss and the box decoding (DFL's softmax, sigmoid,
/// NMS), as PyTorch's autocast does for softmax and losses. With <see cref="ChannelsLast"/>, convolution weights are
/// handed to the kernels in channels-last (NHWC) memory order as well; the caller passes channels-last input
/// (<see cref="ToChannelsLast"/>) and the layout then carries through every layer.
/// </summary>
/// <param name="ComputeType">Float32 (no casts), BFloat16 or Float16.</param>
/// <param name="ChannelsLast">Channels-last weights for the convolutions (CUDA: cuDNN's fast NHWC kernels).</param>
public sealed record CastPolicy(ScalarType ComputeType, bool ChannelsLast = false)
{
    /// <summary>fp32, default memory order: the model's plain forward, bit for bit.</summary>
    public static CastPolicy Float32 { get; } = new(ScalarType.Float32);

    /// <summary>True when the model computes in a lower precision than its fp32 parameters.</summary>
    public bool IsMixed => ComputeType != ScalarType.Float32;

    /// <summary>True when this policy changes nothing (fp32, default memory order).</summary>
    public bool IsIdentity => !IsMixed && !ChannelsLast;

    /// <summary>fp32, bf16 or fp16 (how logs and the bench name the precision).</summary>
    public string Name => ComputeType switch
    {
        ScalarType.BFloat16 => "bf16",
        ScalarType.Float16 => "fp16",
        _ => "fp32",
    } + (ChannelsLast ? ", channels_last" : "");

    /// <summary><paramref name="conv"/> applied to <paramref name="x"/> (b, c_in, h, w) in <see cref="ComputeType"/>.</summary>
    public Tensor Conv(Conv2d conv, Tensor x)
    {
        if (IsIdentity) return conv.call(x);
        var weight = Weight(conv.weight!);                                  // (c_out, c_in/g, k, k)
        using var bias = conv.bias is null ? null : conv.bias.to(ComputeType);
        return nn.functional.conv2d(x.to(ComputeType), weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups);
    }

    /// <summary>
    /// <paramref name="a"/> @ <paramref name="b"/> (batched) as autocast runs <c>matmul</c>: in <see cref="ComputeType"/>
    /// (both operands cast, PyTorch's lower_precision_fp policy on CUDA and on the CPU); fp32: the plain matmul.
    /// </summary>
    public Tensor MatMul(Tensor a, Tensor b)
    {
        if (!IsMixed) return a.matmul(b);
        using var left = a.to(ComputeType);
        using var right = b.to(ComputeType);
        return left.matmul(right);
    }

    /// <summary>
    /// Softmax over <paramref name="dimension"/> where autocast runs it: on CUDA autocast lists <c>softmax</c> under
    /// fp32_set_opt_dtype (computed in float32 from the low-precision input, float32 out); CPU autocast does not list it
    /// (it runs in the input's dtype). fp32: the plain softmax.
    /// </summary>
    public Tensor Softmax(Tensor x, long dimension)
    {
        if (IsMixed && x.device.type == DeviceType.CUDA) return x.softmax(dimension, ScalarType.Float32);
        return x.softmax(dimension);
    }

    /// <summary>A head map (b, no, h, w) as a contiguous fp32 tensor (one copy; differentiable).</summary>
    public Tensor Output(Tensor map)
    {
        if (IsIdentity) return map;
        if (map.dtype == ScalarType.Float32 && map.is_contiguous()) return map;
        return empty(map.shape, dtype: ScalarType.Float32, device: map.device).copy_(map);
    }

    /// <summary>
    /// The same values in channels-last (NHWC) memory order, still indexed (b, c, h, w): PyTorch's
    /// <c>x.contiguous(memory_format=torch.channels_last)</c>, which TorchSharp does not expose.
    /// </summary>
    public static Tensor ToChannelsLast(Tensor x)
    {
        using var nhwc = x.permute(0, 2, 3, 1);
        using var dense = nhwc.contiguous();
        return dense.permute(0, 3, 1, 2);
    }

    /// <summary>True when <paramref name="x"/> (4-D) is laid out channels-last (strides c·w·h, 1, w·c, c).</summary>
    public static bool IsChannelsLast(Tensor x)
    {
        if (x.dim() != 4) return false;
        long[] shape = x.shape, stride = x.stride();
        long c = shape[1], h = shape[2], w = shape[3];
        return stride[1] == 1 && (w == 1 || stride[3] == c) && (h == 1 || stride[2] == w * c) && (shape[0] == 1 || stride[0] == h * w * c);
    }

    // One copy: cast (and, for channels-last, reorder) the fp32 master weight; autograd routes the gradient back.
    Tensor Weight(Parameter weight)
    {
        if (!ChannelsLast) return weight.to(ComputeType);
        using var nhwc = weight.permute(0, 2, 3, 1);
        using var cast = nhwc.to(ComputeType);                               // keeps the permuted strides
        using var dense = cast.contiguous();                                 // NHWC-dense (no copy when already)
        return dense.permute(0, 3, 1, 2);
    }
}
