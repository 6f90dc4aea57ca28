using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OpenCvSharp;
using Osprey.Evaluation;
using Osprey.Inference;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Osprey.Tests.Onnx;

/// <summary>ONNX Runtime on an exported/reference file: (b, 3, H, W) float tensor in, output0 out.</summary>
internal sealed class OrtRunner : IDisposable
{
    private readonly InferenceSession session;

    public OrtRunner(string path, int threads = 0)
    {
        using var options = new SessionOptions();
        if (threads > 0) options.IntraOpNumThreads = threads;
        session = new InferenceSession(path, options);
    }

    public InferenceSession Session => session;

    public Tensor Run(Tensor images)
    {
        using var cpu = images.to(CPU).to_type(ScalarType.Float32).contiguous();
        var data = cpu.data<float>().ToArray();
        var input = new DenseTensor<float>(data, cpu.shape.Select(d => (int)d).ToArray());
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.First(), input) });
        var output = results.First().AsTensor<float>();
        var dims = output.Dimensions.ToArray().Select(d => (long)d).ToArray();
        return tensor(output.ToArray()).reshape(dims);
    }

    public Prediction Predict(string imagePath, IReadOnlyList<string> names, int size = 640)
    {
        using var image = Cv2.ImRead(imagePath, ImreadModes.Color);
        using var boxed = Letterbox.Apply(image, size, size, out var info);
        using var scope = NewDisposeScope();
        var output = Run(Letterbox.ToTensor(new[] { boxed }));
        return Predictor.Postprocess(output, new[] { info }, names, new NmsOptions(), new[] { imagePath })[0];
    }

    public void Dispose() => session.Dispose();
}
