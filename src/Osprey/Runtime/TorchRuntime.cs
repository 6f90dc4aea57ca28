using System.Reflection;
using TorchSharp;

namespace Osprey.Runtime;

/// <summary>Versions and capabilities of the Torch runtime this process loaded.</summary>
public static class TorchRuntime
{
    /// <summary>Osprey's own version (assembly informational version).</summary>
    public static string OspreyVersion =>
        typeof(TorchRuntime).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            .Split('+')[0] ?? "unknown";

    /// <summary>TorchSharp's assembly version.</summary>
    public static string TorchSharpVersion =>
        typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "unknown";

    /// <summary>The libtorch version TorchSharp reports (e.g. 2.10.0).</summary>
    public static string LibTorchVersion => torch.__version__;
}
