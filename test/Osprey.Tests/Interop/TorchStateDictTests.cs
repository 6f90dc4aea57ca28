using System.Text.Json;
using Osprey.Interop;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Interop;

/// <summary>
/// Plain <c>torch.save(state_dict)</c> files written by python3-torch itself read through the same restricted unpickler:
/// tensors that are views into a shared storage (an offset, a transposed stride), fp16, bf16 and int64 values, an
/// OrderedDict with its <c>_metadata</c> attribute; each value equal to what Python prints for it.
/// </summary>
public class TorchStateDictTests
{
    private const string Script = """
        import collections, json, sys, torch
        base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
        state = collections.OrderedDict()
        state["a.weight"] = base                      # shares its storage with the next two
        state["a.tail"] = base.view(-1)[5:17]         # storage offset 5
        state["a.t"] = base.t()                       # strides (1, 6)
        state["b.half"] = (base[:2] * 3).half()
        state["b.bf16"] = (base[1] - 1).bfloat16()
        state["bn.num_batches_tracked"] = torch.tensor(42)
        state._metadata = {"": {"version": 1}}
        torch.save(state, sys.argv[1])
        print(json.dumps({k: [list(v.shape), v.double().flatten().tolist()] for k, v in state.items()}))
        """;

    [SkippableFact]
    public void TorchWrittenStateDictReadsExactly()
    {
        PythonTorch.SkipIfMissing();
        string dir = TestModels.TempDir();
        try
        {
            string pt = Path.Combine(dir, "state.pt");
            using var expected = JsonDocument.Parse(PythonTorch.Run("-c", Script, pt));
            using var file = UltralyticsCheckpoint.Read(pt);
            Assert.False(file.HasArchitecture);
            Assert.Equal("state_dict", file.WeightsFrom);
            Assert.Equal(expected.RootElement.EnumerateObject().Select(p => p.Name).Order(), file.State.Keys.Order());
            using var scope = NewDisposeScope();
            foreach (var entry in expected.RootElement.EnumerateObject())
            {
                var tensor = file.State[entry.Name];
                var values = entry.Value[1].EnumerateArray().Select(v => v.GetDouble()).ToArray();
                Assert.Equal(entry.Value[0].EnumerateArray().Select(d => d.GetInt64()), tensor.shape);
                Assert.Equal(values, tensor.to_type(ScalarType.Float64).flatten().data<double>().ToArray());
            }
            Assert.Equal(ScalarType.Float32, file.State["b.half"].dtype);                 // fp16/bf16 → fp32
            Assert.Equal(ScalarType.Int64, file.State["bn.num_batches_tracked"].dtype);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
