using Onnx;
using Osprey.Models;
using Osprey.Models.Blocks;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace Osprey.Tests.Onnx;

/// <summary>
/// Rewrites an Osprey export the way torch.onnx names Ultralytics' exports: anonymous weight initializers
/// (<c>onnx::Conv_{n}</c>) and node names from the module scopes, where a Sequential's or ModuleList's child is named
/// "&lt;its name&gt;.&lt;index&gt;" and a ModuleList is no scope of its own (<c>/model.10/m/m.0/attn/qkv/conv/Conv</c>,
/// <c>/model.23/cv3.2/cv3.2.0/cv3.2.0.0/conv/Conv</c>, <c>/model.8/m.0/m/m.0/cv1/conv/Conv</c>); a fused RepVGGDW's 7×7 is
/// the block's bare Conv2d (<c>/model.22/m.0/cv1/cv1.2/conv/Conv</c>, weight <c>model.22.m.0.cv1.2.conv.weight</c>).
/// </summary>
internal static class UltralyticsNaming
{
    /// <summary>torch's node scope of the Conv2d at <paramref name="key"/> (e.g. <c>model.10.m.0.attn.qkv.conv</c>).</summary>
    public static string Scope(DetectionModel detector, string key)
    {
        string[] parts = key.Split('.');
        var scopes = new List<string> { $"model.{parts[1]}" };
        Module current = detector.Layers[int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture)].Module;
        string currentName = scopes[0];
        for (int i = 2; i < parts.Length; i++)
        {
            if (current is RepVGGDW && parts[i] == "conv" && i == parts.Length - 2)
            {
                scopes.Add("conv"); // Ultralytics' fuse replaces the Conv block by its Conv2d
                break;
            }
            var child = current.named_children().Single(c => c.name == parts[i]).module;
            bool container = current is Sequential || IsModuleList(current);
            string childName = container ? currentName + "." + parts[i] : parts[i];
            if (!IsModuleList(child)) scopes.Add(childName);
            (current, currentName) = (child, childName);
        }
        return "/" + string.Join("/", scopes) + "/Conv";
    }

    /// <summary>Renames every Conv's weight and bias initializers and the node itself as torch.onnx would.</summary>
    public static void Apply(ModelProto proto, DetectionModel detector)
    {
        int counter = 0;
        var renamed = new Dictionary<string, string>();
        foreach (var node in proto.Graph.Node.Where(n => n.OpType == "Conv"))
        {
            string key = node.Input[1][..^".weight".Length];
            if (key.EndsWith(".dfl.conv", StringComparison.Ordinal)) continue; // DFL keeps its name in Ultralytics' exports
            node.Name = Scope(detector, key);
            for (int i = 1; i < node.Input.Count; i++)
            {
                string name = $"onnx::Conv_{counter++}";
                renamed[node.Input[i]] = name;
                node.Input[i] = name;
            }
        }
        foreach (var initializer in proto.Graph.Initializer)
            if (renamed.TryGetValue(initializer.Name, out var name)) initializer.Name = name;
    }

    static bool IsModuleList(Module module) => module.GetType().Name.StartsWith("ModuleList", StringComparison.Ordinal);
}
