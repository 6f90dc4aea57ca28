using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>Copies tensors into managed arrays (any device, layout or size, including empty).</summary>
public static class HostCopy
{
    /// <summary>The values as float32, row-major. Note: a device → host sync point.</summary>
    public static float[] Floats(Tensor values)
    {
        if (values.numel() == 0) return Array.Empty<float>(); // TorchSharp's accessor rejects empty tensors
        using var host = values.detach().to(CPU).to_type(ScalarType.Float32).contiguous();
        return host.data<float>().ToArray();
    }

    /// <summary>The values as float64, row-major. Note: a device → host sync point.</summary>
    public static double[] Doubles(Tensor values)
    {
        if (values.numel() == 0) return Array.Empty<double>();
        using var host = values.detach().to(CPU).to_type(ScalarType.Float64).contiguous();
        return host.data<double>().ToArray();
    }
}
