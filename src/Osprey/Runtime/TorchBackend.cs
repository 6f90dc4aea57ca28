using System.Reflection;
using TorchSharp;

namespace Osprey.Runtime;

/// <summary>Which libtorch this build and process use: the build's choice and what actually loaded.</summary>
public static class TorchBackend
{
    static readonly Lazy<bool> Cuda = new(ProbeCuda);

    /// <summary>The build's backend property (<c>-p:TorchBackend=cpu|cuda</c>).</summary>
    public static string BuildBackend =>
        typeof(TorchBackend).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "TorchBackend")?.Value ?? "cpu";

    /// <summary>True when the loaded libtorch has CUDA and sees at least one GPU.</summary>
    public static bool CudaAvailable => Cuda.Value;

    /// <summary>One line: build backend, libtorch version and whether CUDA is usable.</summary>
    public static string Description =>
        $"a {BuildBackend} build with libtorch {torch.__version__} " +
        (CudaAvailable ? $"(CUDA, {torch.cuda.device_count()} GPU(s))" : "(CPU only)");

    /// <summary>
    /// Loads the Torch backend before first use. A CUDA build loads libtorch's CUDA libraries from
    /// <c>LD_LIBRARY_PATH</c> here and fails with one clear message when they are not there; a CPU build needs nothing.
    /// </summary>
    public static void Initialize()
    {
        if (BuildBackend != "cuda") return;
        try
        {
            torch.InitializeDeviceType(DeviceType.CUDA);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Exception root = e;
            while (root.InnerException is not null) root = root.InnerException;
            throw new DeviceException(
                "this Osprey is a CUDA build (-p:TorchBackend=cuda) and needs a CUDA libtorch on LD_LIBRARY_PATH, e.g. " +
                "PyTorch's torch/lib (see README, 'Backends'); loading it failed: " + root.Message.Split('\n')[0]);
        }
    }

    static bool ProbeCuda()
    {
        try
        {
            // TorchSharp must load its CUDA backend before any CUDA call; on a CPU libtorch this throws.
            torch.InitializeDeviceType(DeviceType.CUDA);
            return torch.cuda.is_available();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false;
        }
    }
}
